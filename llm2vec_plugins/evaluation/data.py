"""Readers for the local benchmark files (STS-B, SemEval STS12-16, SICK-R, Cranfield) into two plain shapes.

Layouts are those of the shared data folder (see its README); every reader names the missing file and the
layout it expected, so a wrong `--data-dir` is obvious.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class STSPairs:
    """Sentence pairs with a gold similarity score (any scale: only the ranking matters to Spearman)."""

    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]

    def __post_init__(self) -> None:
        if not len(self.sentences1) == len(self.sentences2) == len(self.scores):
            raise ValueError("sentences1, sentences2 and scores must have the same length")

    def __len__(self) -> int:
        return len(self.scores)

    def subset(self, n: int | None) -> STSPairs:
        """n pairs evenly spaced over the set (all when n is None or >= len).

        Evenly spaced rather than the first n: the files are grouped by source (news, captions, forums...),
        so a prefix would measure a single genre.
        """
        keep = _evenly_spaced(len(self), n)
        return STSPairs([self.sentences1[i] for i in keep], [self.sentences2[i] for i in keep],
                        [self.scores[i] for i in keep])


@dataclass(frozen=True)
class RetrievalData:
    """A corpus, queries and graded judgments `qrels[query_id][doc_id] = gain` (gain <= 0: not relevant)."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, float]] = field(default_factory=dict)

    def subset(self, n: int | None) -> RetrievalData:
        """n evenly spaced queries among those with a relevant document (all when n is None); corpus kept whole."""
        judged = [q for q in self.queries if any(g > 0 for g in self.qrels.get(q, {}).values())]
        kept = [judged[i] for i in _evenly_spaced(len(judged), n)]
        return RetrievalData(self.corpus, {q: self.queries[q] for q in kept}, {q: self.qrels[q] for q in kept})


def _evenly_spaced(size: int, n: int | None) -> list[int]:
    if n is None or n >= size:
        return list(range(size))
    if n < 1:
        raise ValueError(f"subset size must be >= 1, got {n}")
    # Deterministic: the same n always selects the same items, so runs stay comparable.
    return sorted({int(round(i * (size - 1) / max(n - 1, 1))) for i in range(n)})


class DataFileError(FileNotFoundError):
    """A benchmark file is missing or does not have the expected layout."""


def _require(path: Path, layout: str) -> Path:
    if not path.is_file():
        raise DataFileError(f"benchmark file not found: {path}\nexpected layout: {layout}")
    return path


STSB_LAYOUT = "<data-dir>/sts/stsb/stsb-en-test.csv: CSV without header, rows 'sentence1,sentence2,score' (0-5)"
SEMEVAL_LAYOUT = ("<data-dir>/sts/semeval/<year>/*.test.tsv: TSV rows 'score<TAB>sentence1<TAB>sentence2', "
                  "rows with an empty score are skipped")
SICK_LAYOUT = ("<data-dir>/sts/sick2014/SICK_test_annotated.txt: TSV with header "
               "'pair_ID sentence_A sentence_B relatedness_score entailment_judgment'")
CRANFIELD_LAYOUT = ("<data-dir>/retrieval/cranfield/{cran.all.1400, cran.qry, cranqrel}: SMART format "
                    "(.I id / .T title / .A / .B / .W text), qrels 'query doc relevance' with queries numbered "
                    "1..N in file order")


def read_stsb(path: str | Path) -> STSPairs:
    """STS Benchmark CSV (`sentence1,sentence2,score`, quoted when a sentence has a comma).

    Example:
        >>> pairs = read_stsb("../shared/data/sts/stsb/stsb-en-test.csv")
        >>> len(pairs)
        1379
    """
    path = _require(Path(path), STSB_LAYOUT)
    s1, s2, scores = [], [], []
    with path.open(encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != 3:
                raise DataFileError(f"{path}:{line_no}: expected 3 fields, got {len(row)}\nexpected layout: {STSB_LAYOUT}")
            s1.append(row[0])
            s2.append(row[1])
            scores.append(_score(row[2], path, line_no, STSB_LAYOUT))
    return STSPairs(s1, s2, scores)


def read_semeval_sts_file(path: str | Path) -> STSPairs:
    """One SemEval STS test file (`score<TAB>sentence1<TAB>sentence2`); rows without a gold score are skipped.

    Split on tabs, not with the csv module: these files contain unbalanced double quotes.
    """
    path = _require(Path(path), SEMEVAL_LAYOUT)
    s1, s2, scores = [], [], []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 3:
                raise DataFileError(f"{path}:{line_no}: expected 3 tab-separated fields, got {len(fields)}\n"
                                    f"expected layout: {SEMEVAL_LAYOUT}")
            if not fields[0].strip():
                continue  # no gold label for this pair (2015/2016 ship unscored rows)
            scores.append(_score(fields[0], path, line_no, SEMEVAL_LAYOUT))
            s1.append(fields[1])
            s2.append(fields[2])
    return STSPairs(s1, s2, scores)


def read_semeval_sts_year(year_dir: str | Path) -> STSPairs:
    """All scored pairs of every `*.test.tsv` in a SemEval year folder, in file-name order (as MTEB's STS1x).

    Example:
        >>> len(read_semeval_sts_year("../shared/data/sts/semeval/2016"))
        1186
    """
    year_dir = Path(year_dir)
    files = sorted(year_dir.glob("*.test.tsv"))
    if not files:
        raise DataFileError(f"no *.test.tsv file found in {year_dir}\nexpected layout: {SEMEVAL_LAYOUT}")
    parts = [read_semeval_sts_file(f) for f in files]
    return STSPairs(
        [s for p in parts for s in p.sentences1],
        [s for p in parts for s in p.sentences2],
        [s for p in parts for s in p.scores],
    )


def read_sick_relatedness(path: str | Path) -> STSPairs:
    """SICK sentence pairs with their relatedness score (1-5), the data of MTEB's SICK-R."""
    path = _require(Path(path), SICK_LAYOUT)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        needed = {"sentence_A", "sentence_B", "relatedness_score"}
        if not needed.issubset(reader.fieldnames or []):
            raise DataFileError(f"{path}: header {reader.fieldnames} lacks {sorted(needed)}\n"
                                f"expected layout: {SICK_LAYOUT}")
        rows = list(reader)
    return STSPairs(
        [r["sentence_A"] for r in rows],
        [r["sentence_B"] for r in rows],
        [_score(r["relatedness_score"], path, i + 2, SICK_LAYOUT) for i, r in enumerate(rows)],
    )


def cranfield_gain(relevance: int) -> float:
    """Graded gain of a Cranfield judgment: `5 - relevance` for relevance 1..4, else 0 (not relevant).

    Cranfield grades 1 = complete answer ... 4 = minimum interest and writes -1 for "not relevant", i.e. a
    smaller grade is MORE relevant, the opposite of the gain nDCG needs. `5 - rel` maps 1..4 to gains 4..1,
    a common conversion, so every judged-relevant document counts and better grades weigh more.

    Example:
        >>> [cranfield_gain(r) for r in (1, 2, 3, 4, -1)]
        [4.0, 3.0, 2.0, 1.0, 0.0]
    """
    return float(5 - relevance) if 1 <= relevance <= 4 else 0.0


_SMART_FIELD = re.compile(r"^\.([A-Z])(?:\s+(.*))?$")


def _read_smart(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Records of a SMART-format file as (id, {field letter: text}), in file order."""
    records: list[tuple[str, dict[str, str]]] = []
    current: dict[str, list[str]] | None = None
    field_name = None
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            match = _SMART_FIELD.match(line.rstrip("\n"))
            if match and match.group(1) == "I":
                current = {}
                records.append(((match.group(2) or "").strip(), current))
                field_name = None
            elif match and current is not None:
                field_name = match.group(1)
                current.setdefault(field_name, [])
            elif current is not None and field_name is not None:
                current[field_name].append(line.strip())
    return [(rid, {k: " ".join(" ".join(v).split()) for k, v in fields.items()}) for rid, fields in records]


def read_cranfield(folder: str | Path) -> RetrievalData:
    """The Cranfield collection: 1,400 documents (title + text), 225 queries, graded qrels (see `cranfield_gain`).

    `cranqrel` numbers queries 1..225 in `cran.qry` file order (their `.I` ids skip numbers), so query ids
    here are those positions. Document text is the title followed by the `.W` text.

    Example:
        >>> data = read_cranfield("../shared/data/retrieval/cranfield")
        >>> len(data.corpus), len(data.queries)
        (1400, 225)
    """
    folder = Path(folder)
    docs_path = _require(folder / "cran.all.1400", CRANFIELD_LAYOUT)
    queries_path = _require(folder / "cran.qry", CRANFIELD_LAYOUT)
    qrels_path = _require(folder / "cranqrel", CRANFIELD_LAYOUT)

    corpus = {}
    for doc_id, fields in _read_smart(docs_path):
        text = " ".join(part for part in (fields.get("T", ""), fields.get("W", "")) if part)
        corpus[str(int(doc_id))] = text if text.strip() else "(empty)"  # a few Cranfield records have no text
    queries = {str(position): fields.get("W", "")
               for position, (_, fields) in enumerate(_read_smart(queries_path), start=1)}
    if not corpus or not queries:
        raise DataFileError(f"no .I records parsed from {docs_path} / {queries_path}\nexpected layout: {CRANFIELD_LAYOUT}")

    qrels: dict[str, dict[str, float]] = {}
    with qrels_path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise DataFileError(f"{qrels_path}:{line_no}: expected 'query doc relevance'\n"
                                    f"expected layout: {CRANFIELD_LAYOUT}")
            query_id, doc_id, relevance = str(int(parts[0])), str(int(parts[1])), int(parts[2])
            if query_id not in queries or doc_id not in corpus:
                raise DataFileError(f"{qrels_path}:{line_no}: judgment for unknown query {query_id} or document "
                                    f"{doc_id}\nexpected layout: {CRANFIELD_LAYOUT}")
            qrels.setdefault(query_id, {})[doc_id] = cranfield_gain(relevance)
    return RetrievalData(corpus, queries, qrels)


def _score(value: str, path: Path, line_no: int, layout: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataFileError(f"{path}:{line_no}: score {value!r} is not a number\nexpected layout: {layout}") from None
