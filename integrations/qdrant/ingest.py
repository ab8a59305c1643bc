"""Idempotent, resumable, pipelined ingestion of documents into Qdrant, and search over the result.

Data flow: files -> `Document`s -> token chunks (each document tokenized once: the chunks carry their
encoder inputs) -> `ChunkRecord`s with deterministic ids -> plan (the chunks
not stored yet, the stale chunks of changed documents) -> encoder -> upload thread -> Qdrant. Documents are
processed in groups of about `group_chunks` chunks; while group i is being uploaded, group i+1 is being
encoded. The same plan and writer serve both paths: local (an `LLM2Vec` in this process) and Ray (reading
and encoding spread over workers, see distributed.py); only the encoder backend differs.

Why this is safe to kill and rerun: a point's id is a hash of (source id, chunk index, chunk text, encoder),
every point is written whole, and a document's stale points (chunks of an older version) are deleted only
after its new points are stored. A rerun therefore skips what is stored, writes what is missing and finishes
any pending stale deletion: the same final set of points whatever the moment of the kill. Only points this
tool wrote (marked with the encoder's key) are ever skipped, replaced or pruned, and a collection holds the
vectors of one encoder: another one is refused before anything is written.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from llm2vec_plugins.integrations.qdrant.chunking import TokenChunker
from llm2vec_plugins.integrations.qdrant.documents import Document, ReadReport, Skipped, read_documents
from llm2vec_plugins.integrations.qdrant.layouts import (
    ChunkRecord,
    LayoutName,
    PayloadLayout,
    detect_layout,
    get_layout,
)
from llm2vec_plugins.integrations.qdrant.store import (
    METADATA_KEY,
    PROBE_TEXT,
    CollectionMismatchError,
    EncoderIdentity,
    content_hash,
    ensure_collection,
    existing_points,
    point_id,
    points_from_other_sources,
)
from llm2vec_plugins.shared import DEFAULT_QUERY_INSTRUCTION
from llm2vec_plugins.tokenization import InputTokenizer, TokenizedText

# Test hook (documented in tests/test_qdrant_resume.py): seconds to sleep after each uploaded group, so a
# test can SIGKILL a small ingest in the middle. Unset in normal use.
_SLOW_ENV = "LLM2VEC_TEST_UPLOAD_DELAY"

DocumentReader = Callable[..., Iterator[Document]]  # (paths, report, text_field=, id_field=) -> documents


@dataclass
class IngestReport:
    """Counts of one ingest run. `encoded + unchanged == chunks`; `skipped` lists unreadable input."""

    documents: int = 0
    chunks: int = 0
    encoded: int = 0
    unchanged: int = 0
    stale_deleted: int = 0
    pruned: int | None = None  # points of documents absent from the input, deleted (None: pruning not done)
    seconds: float = 0.0
    skipped: list[Skipped] = field(default_factory=list)
    source_ids: set[str] = field(default_factory=set, repr=False)  # the documents of this run (for prune)

    @property
    def chunks_per_second(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else 0.0


def chunk_records(document: Document, chunker: TokenChunker, encoder: str = "") -> list[ChunkRecord]:
    """The chunks of one document with their deterministic point ids (for the encoder of key `encoder`)."""
    records = []
    for chunk in chunker.split(document.text):
        digest = content_hash(chunk.text)
        records.append(ChunkRecord(
            point_id=point_id(document.source_id, chunk.index, digest, encoder),
            source_id=document.source_id, source=document.source, chunk_index=chunk.index,
            text=chunk.text, content_hash=digest, metadata=document.metadata, encoder=encoder, tokens=chunk.tokens,
        ))
    return records


@dataclass
class IngestGroup:
    """Whole documents' chunks, planned together: what to encode and which stored points are stale."""

    documents: int
    records: list[ChunkRecord]  # all chunks of the group's documents
    todo: list[ChunkRecord] = field(default_factory=list)  # chunks to encode and upload
    stale: list[str] = field(default_factory=list)  # stored points of older versions of these documents
    vectors: np.ndarray | None = None  # one row per `todo` chunk, filled by the encoder backend


class EncoderBackend(Protocol):
    """Where chunks are encoded: `LocalEncoder` (this process) or `RayEncoders` (actors on workers)."""

    input_tokenizer: InputTokenizer
    embedding_dim: int
    identity: dict

    def encode(self, inputs: list[str] | list[TokenizedText]) -> np.ndarray: ...

    def encode_groups(self, groups: Iterable[IngestGroup]) -> Iterator[IngestGroup]:
        """Fill each group's `vectors` for its `todo` chunks; yield the groups in their order."""


class LocalEncoder:
    """The encoder backend of a local ingest: one `LLM2Vec` in this process (on its GPUs, if any)."""

    def __init__(self, model, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = batch_size
        self.input_tokenizer = model.input_tokenizer
        self.embedding_dim = model.embedding_dim
        self.identity = model.identity

    def encode(self, inputs: list[str] | list[TokenizedText]) -> np.ndarray:
        return self.model.encode(inputs, batch_size=self.batch_size, normalize_embeddings=True)

    def encode_groups(self, groups: Iterable[IngestGroup]) -> Iterator[IngestGroup]:
        for group in groups:
            if group.todo:
                group.vectors = self.encode([r.tokens for r in group.todo])
            yield group


class QdrantIngestor:
    """Write documents into a Qdrant collection with an LLM2Vec encoder: idempotent and resumable.

    Args:
        encoder: an `LLM2Vec`, or an encoder backend (`RayEncoders`) to encode elsewhere.
        client: a `QdrantClient` (see `connect`: embedded folder or server, same code path).
        collection: created on first use (unnamed vector, `distance`); an existing collection with another
            vector size, distance, payload layout or encoder is refused before anything is written.
        layout: payload layout, "llm2vec", "langchain" or "llamaindex" (see layouts.py).
        chunk_tokens, overlap: chunk size and overlap in tokens of the encoder's tokenizer.
        batch_size: encoder batch size; group_chunks: chunks per pipeline step (encode || upload).

    Example:
        >>> from llm2vec_plugins import LLM2Vec
        >>> from llm2vec_plugins.integrations.qdrant import QdrantIngestor, connect
        >>> ingestor = QdrantIngestor(LLM2Vec.from_pretrained("smollm2-135m-llm2vec"),
        ...                           connect(path="./qdrant_data"), "notes", layout="langchain")
        >>> report = ingestor.ingest(["notes/", "faq.jsonl"])
        >>> report.documents, report.chunks, report.encoded
        (120, 340, 340)
    """

    def __init__(self, encoder, client, collection: str, *, layout: LayoutName | PayloadLayout = "llm2vec",
                 chunk_tokens: int = 256, overlap: int = 32, batch_size: int = 32, group_chunks: int = 128,
                 distance: str = "Cosine", show_progress: bool = False) -> None:
        if group_chunks < 1:
            raise ValueError(f"group_chunks must be >= 1, got {group_chunks}")
        backend = encoder if hasattr(encoder, "encode_groups") else LocalEncoder(encoder, batch_size)
        doc_max = backend.input_tokenizer.doc_max_length
        if chunk_tokens > doc_max:
            raise ValueError(f"chunk_tokens={chunk_tokens} exceeds the encoder's doc_max_length={doc_max}: "
                             "chunks would be truncated when encoded. Use smaller chunks.")
        self.backend = backend
        self.client = client
        self.collection = collection
        self.layout = get_layout(layout)
        self.chunker = TokenChunker(backend.input_tokenizer, chunk_tokens, overlap)
        self.batch_size = batch_size
        self.group_chunks = group_chunks
        self.distance = distance
        self.show_progress = show_progress
        self.identity: EncoderIdentity | None = None  # known after prepare()
        # Embedded Qdrant is not thread-safe: the encode thread and the upload thread take turns.
        self._client_lock = threading.Lock()

    @property
    def encoder_key(self) -> str:
        if self.identity is None:
            self.identity = EncoderIdentity.of(self.backend.identity, self.backend.encode([PROBE_TEXT])[0])
        return self.identity.key

    def prepare(self, recreate: bool = False) -> bool:
        """Check (or create) the collection; with `recreate`, delete it first. True if it was created."""
        self.encoder_key  # the probe is encoded before the lock: it may take a while on a cold model
        with self._client_lock:
            if recreate and self.client.collection_exists(self.collection):
                self.client.delete_collection(self.collection)
            return ensure_collection(self.client, self.collection, self.backend.embedding_dim, self.layout,
                                     self.distance, identity=self.identity)

    def ingest(self, paths: Sequence[str | os.PathLike], *, text_field: str = "text",
               id_field: str | None = None, recreate: bool = False, prune: bool = False,
               reader: DocumentReader = read_documents) -> IngestReport:
        """Read files / directories (see `read_documents`) and ingest them; see the class docstring.

        With `prune`, the points this tool wrote for documents that are no longer in `paths` (deleted files,
        removed records) are deleted at the end, so the collection mirrors the input. Pruning is skipped
        (`report.pruned` stays None) when any file or record could not be read: an unreadable file must not
        lose its stored points. `reader` is where documents come from (Ray reads them on its workers).
        """
        read_report = ReadReport()
        report = self.ingest_documents(reader(paths, read_report, text_field=text_field, id_field=id_field),
                                       recreate=recreate)
        report.skipped = read_report.skipped + report.skipped
        if prune and not read_report.skipped:
            report.pruned = self.prune(report.source_ids)
        return report

    def prune(self, keep: set[str]) -> int:
        """Delete every point we wrote whose source id is not in `keep`; returns how many were deleted."""
        from qdrant_client import models

        with self._client_lock:
            stale = points_from_other_sources(self.client, self.collection, self.layout, keep, self.encoder_key)
            for start in range(0, len(stale), 1024):
                self.client.delete(self.collection, wait=True,
                                   points_selector=models.PointIdsList(points=stale[start:start + 1024]))
        return len(stale)

    def ingest_documents(self, documents: Iterable[Document], *, recreate: bool = False) -> IngestReport:
        """Ingest documents: encode the chunks not stored yet, upload them, delete stale chunks."""
        self.prepare(recreate)
        report = IngestReport()
        started = time.perf_counter()
        progress = self._progress()
        uploads: queue.Queue[IngestGroup | None] = queue.Queue(maxsize=1)  # one group encoded ahead, no more
        failure: list[BaseException] = []
        uploader = threading.Thread(target=self._upload_loop, args=(uploads, report, progress, failure),
                                    name="llm2vec-qdrant-upload", daemon=True)
        uploader.start()
        try:
            planned = (self._plan(group) for group in self._groups(documents, report))
            for group in self.backend.encode_groups(planned):
                if failure:
                    break
                report.documents += group.documents
                report.chunks += len(group.records)
                report.unchanged += len(group.records) - len(group.todo)
                self._put(uploads, group, failure)
        finally:
            self._put(uploads, None, failure)
            uploader.join()
            if progress is not None:
                progress.close()
        if failure:
            raise failure[0]
        report.seconds = time.perf_counter() - started
        return report

    # -- pipeline steps ------------------------------------------------------------------------
    def _groups(self, documents: Iterable[Document], report: IngestReport) -> Iterator[IngestGroup]:
        records: list[ChunkRecord] = []
        count = 0
        seen = report.source_ids
        for document in documents:
            if document.source_id in seen:
                # A second document with the same id would replace the first one's chunks: keep the first.
                report.skipped.append(Skipped(document.source_id, "duplicate document id (kept the first one)"))
                continue
            seen.add(document.source_id)
            records.extend(chunk_records(document, self.chunker, self.encoder_key))
            count += 1
            if len(records) >= self.group_chunks:  # whole documents per group: stale cleanup is per document
                yield IngestGroup(count, records)
                records, count = [], 0
        if count:
            yield IngestGroup(count, records)

    def _plan(self, group: IngestGroup) -> IngestGroup:
        """Which chunks of the group must be encoded, and which stored points are stale."""
        sources = list(dict.fromkeys(r.source_id for r in group.records))
        with self._client_lock:
            stored_by_source = existing_points(self.client, self.collection, self.layout, sources,
                                               self.encoder_key)
        wanted = {r.point_id for r in group.records}
        stored = set().union(*stored_by_source.values()) if stored_by_source else set()
        seen: set[str] = set()
        for record in group.records:
            if record.point_id not in stored and record.point_id not in seen:
                group.todo.append(record)
                seen.add(record.point_id)
        group.stale = sorted(stored - wanted)
        return group

    def _put(self, uploads: queue.Queue, item: IngestGroup | None, failure: list[BaseException]) -> None:
        # A plain put() would block forever if the uploader died with a full queue.
        while True:
            try:
                uploads.put(item, timeout=0.2)
                return
            except queue.Full:
                if failure:
                    return

    def _upload_loop(self, uploads: queue.Queue, report: IngestReport, progress, failure: list) -> None:
        delay = float(os.environ.get(_SLOW_ENV, "0") or 0)
        while True:
            group = uploads.get()
            if group is None:
                return
            if failure:
                continue  # drain: the main thread stops feeding after a failure
            try:
                self._upload(group)
                report.encoded += len(group.todo)
                report.stale_deleted += len(group.stale)
                if progress is not None:
                    progress.update(len(group.records))
                    progress.set_postfix(docs=report.documents, new=report.encoded, refresh=False)
                if delay:
                    time.sleep(delay)
            except BaseException as err:  # reported by the main thread
                failure.append(err)

    def _upload(self, group: IngestGroup) -> None:
        from qdrant_client import models

        points = [
            models.PointStruct(id=r.point_id, vector=v.tolist(), payload=self.layout.payload(r))
            for r, v in zip(group.todo, group.vectors if group.vectors is not None else [])
        ]
        with self._client_lock:
            if points:
                self.client.upsert(self.collection, points=points, wait=True)
            # Only now that the new version is stored may the old one go (crash-safe order).
            if group.stale:
                self.client.delete(self.collection, points_selector=models.PointIdsList(points=group.stale),
                                   wait=True)

    def _progress(self):
        if not self.show_progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(desc="Indexing", unit="chunk", dynamic_ncols=True)


@dataclass(frozen=True)
class SearchHit:
    """One search result: point id, similarity score, chunk text and its metadata (incl. source, chunk_index)."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "text": self.text, "metadata": self.metadata}


def search(encoder, client, collection: str, query: str, k: int = 10, *,
           instruction: str | None = DEFAULT_QUERY_INSTRUCTION, query_filter=None) -> list[SearchHit]:
    """Encode `query` under the retrieval query instruction and return the `k` nearest chunks, best first.

    Works on collections of any of the three payload layouts (detected per point).

    Example:
        >>> hits = search(model, connect(path="./qdrant_data"), "notes", "how do I reset my password?", k=3)
        >>> hits[0].text, hits[0].metadata["source"]
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query must be a non-empty string")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not client.collection_exists(collection):
        raise ValueError(f"collection {collection!r} does not exist; create it with `llm2vec index`")
    vectors = client.get_collection(collection).config.params.vectors
    params = vectors.get("") if isinstance(vectors, dict) else vectors
    if params is None or params.size != encoder.embedding_dim:
        raise CollectionMismatchError(
            f"collection {collection!r} has no unnamed vector of size {encoder.embedding_dim} (this encoder's); "
            "search it with the model it was indexed with (--model)")
    stored = (getattr(client.get_collection(collection).config, "metadata", None) or {}).get(METADATA_KEY)
    identity = getattr(encoder, "identity", None)
    if stored and isinstance(identity, dict) and stored.get("encoder_key") != EncoderIdentity(identity).key:
        raise CollectionMismatchError(
            f"collection {collection!r} was indexed with {EncoderIdentity(stored.get('encoder') or {}).describe()}; "
            f"queries embedded by {EncoderIdentity(identity).describe()} would search a space they were not "
            "made for. Search with the collection's encoder (--model / --peft-model).")
    sentence: Any = [instruction, query] if instruction else query
    vector = encoder.encode([sentence], normalize_embeddings=True)[0]
    points = client.query_points(collection, query=vector.tolist(), limit=k, with_payload=True,
                                 query_filter=query_filter).points
    hits = []
    for point in points:
        payload = point.payload or {}
        layout = detect_layout(payload)
        text, metadata = layout.read(payload) if layout else ("", dict(payload))
        hits.append(SearchHit(str(point.id), float(point.score), text, metadata))
    return hits
