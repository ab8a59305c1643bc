"""Read documents to index from .txt, .md, .jsonl, .csv and .parquet files, reporting what cannot be read.

A `Document` has a stable `source_id` (the file path, plus the record number or id column for tabular
files) so that re-reading the same corpus gives the same ids: the Qdrant ingestion derives point ids from it.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEXT_SUFFIXES = frozenset({".txt", ".md"})
RECORD_SUFFIXES = frozenset({".jsonl", ".csv", ".parquet"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | RECORD_SUFFIXES
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Document:
    """One text to index: `source_id` is unique and stable across runs, `metadata` holds the other columns."""

    source_id: str
    text: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A file (or one record of a file, `path:line`) that was not indexed, and why."""

    where: str
    reason: str


@dataclass
class ReadReport:
    """What `read_documents` skipped; filled while its iterator is consumed."""

    skipped: list[Skipped] = field(default_factory=list)
    files: int = 0

    def skip(self, where: str | os.PathLike, reason: str) -> None:
        self.skipped.append(Skipped(os.fspath(where), reason))


def iter_files(paths: Iterable[str | os.PathLike], report: ReadReport) -> Iterator[Path]:
    """Expand files and directories (recursively, sorted) into the supported files they contain.

    A file named explicitly with an unsupported suffix is reported; inside directories such files are
    ignored silently, as a directory usually holds other things too (images, .gitignore...). Whatever
    the walk meets and cannot read (a dangling or looping symbolic link, a folder it may not list) is
    reported with the reason, never left out silently: ingestion must not take it for a deleted file.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk(path, report)
        elif path.is_file():
            if path.suffix.lower() in SUPPORTED_SUFFIXES:
                yield path
            else:
                report.skip(path, f"unsupported file type {path.suffix or '(none)'!r}; "
                                  f"expected one of {', '.join(sorted(SUPPORTED_SUFFIXES))}")
        elif path.is_symlink():
            report.skip(path, _broken_link_reason(path))
        else:
            report.skip(path, "no such file or directory")


def _walk(root: Path, report: ReadReport) -> Iterator[Path]:
    """The supported files under `root`, following symbolic links to folders once each (no cycles)."""
    seen_dirs: set[str] = set()
    found: list[Path] = []

    def unreadable_dir(err: OSError) -> None:
        report.skip(err.filename or root, f"cannot list folder: {err.strerror or err}")

    for folder, dirs, files in os.walk(root, onerror=unreadable_dir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen_dirs:
            dirs[:] = []  # a link back into the tree: already walked
            continue
        seen_dirs.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            child = Path(folder, name)
            if name.startswith(".") or child.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            if child.is_file():
                found.append(child)
            else:
                report.skip(child, _broken_link_reason(child) if child.is_symlink() else "not a regular file")
        for name in list(dirs):  # os.walk lists broken links to folders nowhere else
            if Path(folder, name).is_symlink() and not Path(folder, name).exists():
                report.skip(Path(folder, name), _broken_link_reason(Path(folder, name)))
    yield from sorted(found)


def _broken_link_reason(link: Path) -> str:
    try:
        link.stat()
    except OSError as err:
        target = os.readlink(link)
        return f"symbolic link to {target} cannot be followed: {err.strerror or err}"
    return "cannot be read"


def read_documents(
    paths: Sequence[str | os.PathLike],
    report: ReadReport | None = None,
    *,
    text_field: str = "text",
    id_field: str | None = None,
) -> Iterator[Document]:
    """Yield the documents of files and directories, lazily, in a deterministic order.

    .txt / .md files are one document each. .jsonl, .csv and .parquet files give one document per
    record: `text_field` is the text, the other fields become metadata, and the id is
    `path#<id_field value>` if `id_field` is given, else `path#<record number>`. Binary, non-UTF-8,
    unreadable and empty files (and records without text) are recorded in `report` and skipped.

    Example:
        >>> report = ReadReport()
        >>> docs = list(read_documents(["notes/", "faq.jsonl"], report, text_field="answer"))
        >>> [s.reason for s in report.skipped]
        ['binary file (contains NUL bytes)']
    """
    report = report if report is not None else ReadReport()
    for path in iter_files(paths, report):
        report.files += 1
        # Absolute paths keep ids stable whatever the working directory of the run.
        source = str(path.resolve())
        suffix = path.suffix.lower()
        try:
            if suffix in TEXT_SUFFIXES:
                text = _read_text(path)
                if not text.strip():
                    report.skip(path, "empty file")
                    continue
                yield Document(source_id=source, text=text, source=source)
                continue
            records = {".jsonl": _jsonl_records, ".csv": _csv_records, ".parquet": _parquet_records}[suffix]
            found = 0
            for number, record in records(path, report):
                if found == 0 and suffix != ".jsonl" and text_field not in record:
                    # Tables have one set of columns: name them instead of skipping every row alike.
                    raise _Unreadable(f"no {text_field!r} column (columns: {', '.join(map(str, record))}); "
                                      "choose the text column with --text-field / text_field=")
                document = _record_document(record, number, source, text_field, id_field, report, path)
                if document is not None:
                    found += 1
                    yield document
            if found == 0:
                report.skip(path, f"no record with a non-empty {text_field!r} field")
        except _Unreadable as err:
            report.skip(path, str(err))


class _Unreadable(Exception):
    """A file that cannot be read at all (the reason is the message)."""


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise _Unreadable(f"cannot read: {err.strerror or err}") from err
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise _Unreadable("binary file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _Unreadable(f"not UTF-8 text ({err.reason} at byte {err.start})") from err


def _jsonl_records(path: Path, report: ReadReport) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            report.skip(f"{path}:{number}", f"invalid JSON ({err.msg})")
            continue
        if not isinstance(record, dict):
            report.skip(f"{path}:{number}", "JSON line is not an object")
            continue
        yield number, record


def _csv_records(path: Path, report: ReadReport) -> Iterator[tuple[int, dict]]:
    text = _read_text(path)
    reader = csv.DictReader(text.splitlines())
    for number, row in enumerate(reader, start=2):  # line 1 is the header
        yield number, {k: v for k, v in row.items() if k is not None}


def _parquet_records(path: Path, report: ReadReport) -> Iterator[tuple[int, dict]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:  # pragma: no cover - pyarrow is part of the qdrant extra
        raise _Unreadable("reading .parquet needs pyarrow: pip install 'llm2vec-plugins[qdrant]'") from err
    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for corrupt or non-parquet files
        raise _Unreadable(f"not a readable parquet file ({err})") from err
    number = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _record_document(record: dict, number: int, source: str, text_field: str, id_field: str | None,
                     report: ReadReport, path: Path) -> Document | None:
    where = f"{path}:{number}"
    text = record.get(text_field)
    if text is None or (isinstance(text, float) and math.isnan(text)):
        report.skip(where, f"no {text_field!r} field")
        return None
    if not isinstance(text, str):
        report.skip(where, f"{text_field!r} is a {type(text).__name__}, not a string")
        return None
    if not text.strip():
        report.skip(where, f"empty {text_field!r}")
        return None
    key = number
    if id_field is not None:
        if record.get(id_field) in (None, ""):
            report.skip(where, f"no {id_field!r} (id) field")
            return None
        key = record[id_field]
    metadata = {k: _json_value(v) for k, v in record.items() if k != text_field}
    return Document(source_id=f"{source}#{key}", text=text, source=source, metadata=metadata)


def _json_value(value: Any) -> Any:
    """Payloads are JSON: keep JSON types, turn the rest (dates, decimals, bytes...) into strings."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return str(value)
