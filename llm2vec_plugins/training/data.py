"""Training data: read texts or (query, positive, negatives) rows from files or a Hugging Face dataset.

Bad rows (empty, wrong type, missing field, undecodable) are counted and skipped, and a `DataReport`
says how many and why; a source that is missing, unreadable or left with no usable row is an error,
raised before any model is loaded.
"""
from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEXT_COLUMNS = ("text", "sentence", "content", "document", "query")


class DataError(ValueError):
    """The training data cannot be used (missing, unreadable, or empty after skipping bad rows)."""


@dataclass
class DataReport:
    """How many rows were read, kept and skipped (with a count per reason)."""

    source: str
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def __str__(self) -> str:
        total = sum(self.skipped.values())
        text = f"{self.source}: {self.kept} rows kept"
        if total:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            text += f", {total} skipped ({reasons})"
        return text


def _records(source: str) -> Iterator[Any]:
    """Raw rows of a file (str for .txt lines, dict for the others) or of a HF dataset's train split."""
    path = Path(source).expanduser()
    if path.is_dir():
        raise DataError(f"{source} is a folder; pass a .txt, .jsonl, .csv or .parquet file")
    if not path.exists():
        if "/" in source and not source.startswith((".", "/")) and path.suffix == "":
            yield from _hf_records(source)
            return
        raise DataError(f"training data {source!r} not found")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    try:
        if suffix in (".jsonl", ".json", ".jsonl.gz", ".json.gz"):
            yield from _jsonl_records(path)
        elif suffix in (".csv", ".tsv"):
            with path.open(newline="", encoding="utf-8", errors="replace") as f:
                yield from csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches():
                yield from batch.to_pylist()
        else:  # plain text, one document or sentence per line
            with path.open(encoding="utf-8", errors="replace") as f:
                for line in f:
                    yield line.rstrip("\n")
    except (OSError, UnicodeError, csv.Error) as err:
        raise DataError(f"cannot read training data {source}: {err}") from err
    except Exception as err:  # pyarrow raises its own types for a corrupt file
        if type(err).__module__.startswith("pyarrow"):
            raise DataError(f"cannot read training data {source}: {err}") from err
        raise


def _jsonl_records(path: Path) -> Iterator[Any]:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                yield None
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                yield _BadRow("invalid JSON")


class _BadRow:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _hf_records(name: str) -> Iterator[dict]:
    try:
        import datasets
    except ImportError as err:
        raise DataError(f"{name!r} is not a file; loading a Hugging Face dataset needs: pip install datasets") from err
    try:
        dataset = datasets.load_dataset(name, split="train")
    except Exception as err:  # network, missing dataset, no train split: all mean "cannot use it"
        raise DataError(f"training data {name!r} is neither a local file nor a loadable Hugging Face dataset: {err}") from err
    yield from dataset


def _clean_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def read_texts(source: str | Path, text_column: str | None = None, max_examples: int | None = None,
               min_chars: int = 1) -> tuple[list[str], DataReport]:
    """Texts for MNTP / SimCSE: lines of a .txt file, or one column of JSONL/CSV/Parquet/HF rows.

    Example:
        >>> texts, report = read_texts("corpus.txt")
        >>> print(report)
        corpus.txt: 20000 rows kept, 3 skipped (3 empty)
    """
    source = str(source)
    report = DataReport(source)
    texts: list[str] = []
    for record in _records(source):
        if max_examples is not None and len(texts) >= max_examples:
            break
        if isinstance(record, _BadRow):
            report.skip(record.reason)
            continue
        if isinstance(record, dict):
            column = text_column or next((c for c in TEXT_COLUMNS if c in record), None)
            if column is None or column not in record:
                report.skip(f"no {text_column or '/'.join(TEXT_COLUMNS)} field")
                continue
            record = record[column]
        text = _clean_text(record)
        if text is None or len(text) < min_chars:
            report.skip("empty" if record is None or isinstance(record, str) else "not a string")
            continue
        texts.append(text)
    report.kept = len(texts)
    if not texts:
        raise DataError(f"training data {source} has no usable text ({report})")
    return texts, report


@dataclass
class PairExample:
    """One supervised example: instruction (query side only), query, positive, hard negatives, source."""

    query: str
    positive: str
    negatives: list[str]
    instruction: str = ""
    source: str = ""


def read_pairs(source: str | Path, num_hard_negatives: int = 1, source_column: str = "dataset",
               max_examples: int | None = None) -> tuple[list[PairExample], DataReport]:
    """Supervised rows in the public E5 layout: {"query", "positive", "negative" | "negatives", "instruction"?}.

    Rows with fewer than `num_hard_negatives` usable negatives are skipped. The source dataset is read
    from `source_column` (default "dataset"); rows without it share one source.

    Example:
        >>> examples, report = read_pairs("e5.jsonl", num_hard_negatives=1)
    """
    source = str(source)
    report = DataReport(source)
    examples: list[PairExample] = []
    for record in _records(source):
        if max_examples is not None and len(examples) >= max_examples:
            break
        if isinstance(record, _BadRow):
            report.skip(record.reason)
            continue
        if not isinstance(record, dict):
            report.skip("not an object" if record is not None else "empty")
            continue
        query, positive = _clean_text(record.get("query")), _clean_text(record.get("positive"))
        if query is None or positive is None:
            report.skip("missing query or positive")
            continue
        raw = record.get("negatives", record.get("negative", []))
        raw = [raw] if isinstance(raw, str) else raw if isinstance(raw, (list, tuple)) else []
        negatives = [n for n in (_clean_text(x) for x in raw) if n is not None]
        if len(negatives) < num_hard_negatives:
            report.skip(f"fewer than {num_hard_negatives} negatives")
            continue
        instruction = record.get("instruction") or ""
        if not isinstance(instruction, str):
            report.skip("instruction not a string")
            continue
        examples.append(PairExample(query, positive, negatives[:num_hard_negatives] if num_hard_negatives else [],
                                    instruction.strip(), str(record.get(source_column) or "")))
    report.kept = len(examples)
    if not examples:
        raise DataError(f"training data {source} has no usable (query, positive) row ({report})")
    return examples, report


def print_report(report: DataReport) -> None:
    print(f"[llm2vec train] data {report}", file=sys.stderr)
