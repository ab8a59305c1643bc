"""Training data: read texts or (query, positive, negatives) rows from files, an E5 folder or a Hugging Face dataset.

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
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def __str__(self) -> str:
        total = sum(self.skipped.values())
        text = f"{self.source}: {self.kept} rows kept"
        if total:
            reasons = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
            text += f", {total} skipped ({reasons})"
        return "; ".join([text, *self.notes])


def _records(source: str) -> Iterator[Any]:
    """Raw rows of a file (str for .txt lines, dict for the others) or of a HF dataset's train split."""
    path = Path(source).expanduser()
    if path.is_dir():
        raise DataError(f"{source} is a folder; pass a .txt, .jsonl, .csv or .parquet file "
                        "(a folder is read only as the E5 layout, by supervised training)")
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


# The reference's instruction for each file of the public E5 data, copied from llm2vec 0.2.3
# (llm2vec/dataset/E5Data.py). A list holds two instructions that alternate by row index (i % 2).
E5_EMBEDDING_PROMPTS: dict[str, str | list[str]] = {
    "allnli": [
        "Given a premise, retrieve a hypothesis that is entailed by the premise",
        "Retrieve semantically similar text",
    ],
    "dureader": "Given a Chinese search query, retrieve web passages that answer the question",
    "eli5_question_answer": "Provided a user question, retrieve the highest voted answers on Reddit ELI5 forum",
    "fever": "Given a claim, retrieve documents that support or refute the claim",
    "hotpot_qa": "Given a multi-hop question, retrieve documents that can help answer the question",
    "miracl": "Given a question, retrieve Wikipedia passages that answer the question",
    "mrtydi": "Given a question, retrieve Wikipedia passages that answer the question",
    "msmarco_passage": "Given a web search query, retrieve relevant passages that answer the query",
    "msmarco_document": "Given a web search query, retrieve relevant documents that answer the query",
    "nq": "Given a question, retrieve Wikipedia passages that answer the question",
    "quora_duplicates": [
        "Given a question, retrieve questions that are semantically equivalent to the given question",
        "Find questions that have the same meaning as the input question",
    ],
    "squad": "Retrieve Wikipedia passages that answer the question",
    "t2ranking": "Given a Chinese search query, retrieve web passages that answer the question",
    "trivia_qa": "Retrieve Wikipedia passages that answer the question",
}
# The reference's earlier layout splits the two-instruction datasets into one file per instruction
# ({name}_split1.jsonl, {name}_split2.jsonl, each merged back into {name}); for these three splits the
# reference puts the instruction on the positive and the negative as well (symmetric tasks).
E5_SYMMETRIC_SPLITS = ("allnli_split2", "quora_duplicates_split1", "quora_duplicates_split2")


def e5_instructions(name: str, row: int) -> tuple[str, str]:
    """(query instruction, document instruction) of row `row` of the E5 file `name` (without .jsonl).

    The reference writes `f"{instruction}; " + text`; our `[instruction, text]` pairs are joined as
    `f"{instruction} {text}"` (tokenization.py), so the instruction is returned with its ";" and the
    pair tokenizes to the reference's tokens. The document instruction is "" except for the reference's
    symmetric splits.

    Example:
        >>> e5_instructions("allnli", 1)
        ('Retrieve semantically similar text;', '')
    """
    base, _, split = name.rpartition("_split") if "_split" in name else (name, "", "")
    prompts = E5_EMBEDDING_PROMPTS.get(base)
    if prompts is None or (split and (isinstance(prompts, str) or split not in ("1", "2"))):
        raise KeyError(f"{name!r} is not an E5 dataset name; known: {', '.join(E5_EMBEDDING_PROMPTS)}")
    if isinstance(prompts, str):
        instruction = prompts
    else:
        instruction = prompts[int(split) - 1] if split else prompts[row % 2]
    return f"{instruction};", f"{instruction};" if name in E5_SYMMETRIC_SPLITS else ""


def e5_source(name: str) -> str | None:
    """The source dataset of an E5 file name (splits merge into their dataset), or None if not an E5 file."""
    try:
        e5_instructions(name, 0)
    except KeyError:
        return None
    return name.split("_split")[0]


@dataclass
class PairExample:
    """One supervised example: query, positive, hard negatives, their instructions, and source dataset.

    `instruction` goes with the query; `document_instruction` (usually "") with the positive and the
    negatives. Both are attended to but not pooled.
    """

    query: str
    positive: str
    negatives: list[str]
    instruction: str = ""
    source: str = ""
    document_instruction: str = ""


def _pair_fields(record: Any, num_hard_negatives: int, report: DataReport) -> tuple[str, str, list[str]] | None:
    """(query, positive, negatives) of a raw row, or None (counted in `report`) when it is unusable."""
    if isinstance(record, _BadRow):
        report.skip(record.reason)
        return None
    if not isinstance(record, dict):
        report.skip("not an object" if record is not None else "empty")
        return None
    query, positive = _clean_text(record.get("query")), _clean_text(record.get("positive"))
    if query is None or positive is None:
        report.skip("missing query or positive")
        return None
    raw = record.get("negatives", record.get("negative", []))
    raw = [raw] if isinstance(raw, str) else raw if isinstance(raw, (list, tuple)) else []
    negatives = [n for n in (_clean_text(x) for x in raw) if n is not None]
    if len(negatives) < num_hard_negatives:
        report.skip(f"fewer than {num_hard_negatives} negatives")
        return None
    return query, positive, negatives[:num_hard_negatives] if num_hard_negatives else []


def read_pairs(source: str | Path, num_hard_negatives: int = 1, source_column: str = "dataset",
               max_examples: int | None = None) -> tuple[list[PairExample], DataReport]:
    """Supervised (query, positive, hard negatives) rows, in one of two layouts.

    - The public E5 data as the reference reads it: a folder of per-dataset files (`allnli.jsonl`,
      `msmarco_passage.jsonl`, ...; rows {"query", "positive", "negative"}), or one such file. Each
      file's instruction comes from `E5_EMBEDDING_PROMPTS` and its name is the source dataset, as in
      the reference (rows' own "instruction" / "dataset" fields are not read); other files in the
      folder are ignored (the report names them).
    - Any other file or dataset: rows {"query", "positive", "negative" | "negatives", "instruction"?}
      with the source dataset in `source_column` (default "dataset"; rows without it share one source).

    Rows with fewer than `num_hard_negatives` usable negatives are skipped.

    Example:
        >>> examples, report = read_pairs("echo-data/", num_hard_negatives=1)   # E5 folder
        >>> examples, report = read_pairs("pairs.jsonl")                         # per-row instructions
    """
    source = str(source)
    e5 = _e5_files(Path(source).expanduser())
    if e5 is not None:
        return _read_e5_files(source, *e5, num_hard_negatives, max_examples)
    report = DataReport(source)
    examples: list[PairExample] = []
    for record in _records(source):
        if max_examples is not None and len(examples) >= max_examples:
            break
        parsed = _pair_fields(record, num_hard_negatives, report)
        if parsed is None:
            continue
        instruction = record.get("instruction") or ""
        if not isinstance(instruction, str):
            report.skip("instruction not a string")
            continue
        examples.append(PairExample(*parsed, instruction.strip(), str(record.get(source_column) or "")))
    report.kept = len(examples)
    if not examples:
        raise DataError(f"training data {source} has no usable (query, positive) row ({report})")
    return examples, report


def _e5_files(path: Path) -> tuple[list[Path], list[str]] | None:
    """(E5 files to read, names of the other .jsonl files) of a folder, or ([path], []) for one E5-named
    file; None when `path` is not in the E5 layout."""
    if path.is_file():
        return ([path], []) if path.suffix == ".jsonl" and e5_source(path.stem) is not None else None
    if not path.is_dir():
        return None
    files = sorted(path.glob("*.jsonl"))
    known = [f for f in files if e5_source(f.stem) is not None]
    if not known:
        raise DataError(f"folder {path} holds no E5 dataset file; expected files named after the reference's "
                        f"datasets: {', '.join(n + '.jsonl' for n in E5_EMBEDDING_PROMPTS)}")
    return known, [f.name for f in files if f not in known]


def _read_e5_files(source: str, files: list[Path], ignored: list[str], num_hard_negatives: int,
                   max_examples: int | None) -> tuple[list[PairExample], DataReport]:
    report = DataReport(source)
    if ignored:
        report.notes.append(f"ignored (not an E5 dataset name): {', '.join(ignored)}")
    # The reference reads the datasets in its table's order; it matters only for max_examples here.
    order = {name: i for i, name in enumerate(E5_EMBEDDING_PROMPTS)}
    files = sorted(files, key=lambda f: (order[e5_source(f.stem)], f.name))
    examples: list[PairExample] = []
    counts: Counter = Counter()
    for file in files:
        name = file.stem
        # The row index counts every line, as the reference's i does, so instructions alternate alike.
        for row, record in enumerate(_records(str(file))):
            if max_examples is not None and len(examples) >= max_examples:
                break
            parsed = _pair_fields(record, num_hard_negatives, report)
            if parsed is None:
                continue
            instruction, document_instruction = e5_instructions(name, row)
            examples.append(PairExample(*parsed, instruction, e5_source(name), document_instruction))
            counts[e5_source(name)] += 1
    report.kept = len(examples)
    if not examples:
        raise DataError(f"training data {source} has no usable (query, positive) row ({report})")
    report.notes.append("E5 layout, instructions from E5_EMBEDDING_PROMPTS: "
                        + ", ".join(f"{name} {n}" for name, n in counts.items()))
    return examples, report


def print_report(report: DataReport) -> None:
    print(f"[llm2vec train] data {report}", file=sys.stderr)
