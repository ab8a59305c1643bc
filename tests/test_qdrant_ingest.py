"""Qdrant ingestion through the Python API (`llm2vec_plugins.integrations.qdrant`), embedded Qdrant, tiny model."""
from __future__ import annotations

import json

import numpy as np

import pytest

pytest.importorskip("qdrant_client")

from qdrant_client import models  # noqa: E402

from llm2vec_plugins import LLM2Vec  # noqa: E402
from llm2vec_plugins.integrations.qdrant.chunking import TokenChunker  # noqa: E402
from llm2vec_plugins.integrations.qdrant.documents import ReadReport, read_documents  # noqa: E402
from llm2vec_plugins.integrations.qdrant import (  # noqa: E402
    CollectionMismatchError,
    QdrantIngestor,
    connect,
    point_id,
    search,
)

LONG = " ".join(f"Sentence {i} is about the number {i} and its neighbours." for i in range(60))


@pytest.fixture(scope="module")
def encoder(tiny_llama_dir):
    return LLM2Vec.from_pretrained(tiny_llama_dir)


@pytest.fixture
def client(tmp_path):
    client = connect(path=tmp_path / "qdrant")
    yield client
    client.close()


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "long.txt").write_text(LONG)
    (root / "short.md").write_text("# Title\nA short markdown note about cats.")
    (root / "faq.jsonl").write_text(
        json.dumps({"text": "How to reset a password.", "topic": "account"}) + "\n"
        + json.dumps({"text": "Where is the invoice?", "topic": "billing", "tags": ["a", "b"]}) + "\n")
    (root / "table.csv").write_text("title,text\nAlpha,First row text\nBeta,Second row text\n")
    return root


def _ingestor(encoder, client, **kwargs):
    kwargs = {"chunk_tokens": 32, "overlap": 4, "group_chunks": 4, **kwargs}
    return QdrantIngestor(encoder, client, "docs", **kwargs)


def _all_points(client, collection="docs"):
    points, _ = client.scroll(collection, limit=10_000, with_payload=True)
    return points


# -- reading and chunking ------------------------------------------------------------------------
def test_reader_yields_one_document_per_file_or_record_with_metadata(corpus):
    report = ReadReport()
    docs = list(read_documents([corpus], report))
    assert report.skipped == []
    assert len(docs) == 1 + 1 + 2 + 2
    faq = [d for d in docs if d.source.endswith("faq.jsonl")]
    assert faq[1].metadata == {"topic": "billing", "tags": ["a", "b"]}
    assert faq[1].source_id.endswith("faq.jsonl#2")
    csv_rows = [d for d in docs if d.source.endswith("table.csv")]
    assert [d.metadata["title"] for d in csv_rows] == ["Alpha", "Beta"]


def test_reader_reads_parquet_records(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["one text", "two text"], "n": [1, 2]}), tmp_path / "t.parquet")
    docs = list(read_documents([tmp_path / "t.parquet"], text_field="body", id_field="n"))
    assert [(d.text, d.metadata, d.source_id.split("#")[1]) for d in docs] == [
        ("one text", {"n": 1}, "1"), ("two text", {"n": 2}, "2")]


def test_reader_reports_binary_empty_undecodable_and_unsupported_files(tmp_path):
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01binary")
    (tmp_path / "empty.md").write_text("   \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n{"other": 1}\n')
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    report = ReadReport()
    docs = list(read_documents([tmp_path, tmp_path / "image.png", tmp_path / "missing.txt"], report))
    assert [d.text for d in docs] == ["ok"]
    reasons = {s.where.split("/")[-1]: s.reason for s in report.skipped}
    assert reasons["bin.txt"].startswith("binary")
    assert reasons["empty.md"] == "empty file"
    assert reasons["latin1.txt"].startswith("not UTF-8")
    assert reasons["bad.jsonl:2"].startswith("invalid JSON")
    assert reasons["bad.jsonl:3"] == "no 'text' field"
    assert reasons["image.png"].startswith("unsupported file type")
    assert reasons["missing.txt"] == "no such file or directory"


def test_chunks_are_overlapping_exact_slices_of_the_text(encoder):
    chunker = TokenChunker(encoder.tokenizer, chunk_tokens=32, overlap=8)
    chunks = chunker.split(LONG)
    assert len(chunks) > 3
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert LONG[chunk.start:chunk.end] == chunk.text
        assert len(encoder.tokenizer(chunk.text, add_special_tokens=False)["input_ids"]) <= 32 + 1
    assert chunks[1].start < chunks[0].end  # overlap
    assert chunks[-1].end == len(LONG)
    assert chunker.split("short text") == [chunks[0].__class__(0, "short text", 0, 10)]


def test_chunker_rejects_overlap_not_smaller_than_chunk(encoder):
    with pytest.raises(ValueError, match="overlap"):
        TokenChunker(encoder.tokenizer, chunk_tokens=16, overlap=16)


def test_point_ids_are_deterministic_uuids_of_source_index_and_content():
    assert point_id("a.txt", 0, "h") == point_id("a.txt", 0, "h")
    assert len({point_id("a.txt", 0, "h"), point_id("a.txt", 1, "h"), point_id("b.txt", 0, "h"),
                point_id("a.txt", 0, "g")}) == 4


# -- ingestion ---------------------------------------------------------------------------------------
def test_ingest_stores_every_chunk_with_text_and_metadata(encoder, client, corpus):
    report = _ingestor(encoder, client).ingest([corpus])
    points = _all_points(client)
    assert report.documents == 6 and report.chunks == report.encoded == len(points) > 6
    assert report.skipped == []
    by_source = {}
    for p in points:
        by_source.setdefault(p.payload["source_id"], []).append(p.payload["chunk_index"])
    long_id = str((corpus / "long.txt").resolve())
    assert sorted(by_source[long_id]) == list(range(len(by_source[long_id])))
    faq = next(p.payload for p in points if p.payload["text"] == "Where is the invoice?")
    assert faq["metadata"] == {"topic": "billing", "tags": ["a", "b"]}
    assert faq["source"] == str((corpus / "faq.jsonl").resolve())


def test_second_ingest_is_idempotent_and_encodes_nothing(encoder, client, corpus):
    first = _ingestor(encoder, client).ingest([corpus])
    ids = {p.id for p in _all_points(client)}
    second = _ingestor(encoder, client).ingest([corpus])
    assert second.encoded == 0 and second.unchanged == first.chunks
    assert {p.id for p in _all_points(client)} == ids


def test_changed_document_replaces_its_chunks_and_leaves_no_stale_ones(encoder, client, corpus):
    _ingestor(encoder, client).ingest([corpus])
    before = len(_all_points(client))
    long_id = str((corpus / "long.txt").resolve())
    (corpus / "long.txt").write_text("Now a single short sentence.")
    report = _ingestor(encoder, client).ingest([corpus])
    assert report.encoded == 1 and report.stale_deleted > 1
    long_points = [p for p in _all_points(client) if p.payload["source_id"] == long_id]
    assert [p.payload["text"] for p in long_points] == ["Now a single short sentence."]
    assert len(_all_points(client)) == before - report.stale_deleted + 1


def test_prune_deletes_the_points_of_removed_documents_only(encoder, client, corpus):
    _ingestor(encoder, client).ingest([corpus])
    removed = str((corpus / "long.txt").resolve())
    kept = {p.id for p in _all_points(client) if p.payload["source_id"] != removed}
    (corpus / "long.txt").unlink()
    without_prune = _ingestor(encoder, client).ingest([corpus])
    assert without_prune.pruned is None and any(p.payload["source_id"] == removed for p in _all_points(client))
    report = _ingestor(encoder, client).ingest([corpus], prune=True)
    assert report.pruned > 1 and report.encoded == 0
    assert {p.id for p in _all_points(client)} == kept


def test_prune_keeps_everything_when_an_input_file_cannot_be_read(encoder, client, corpus):
    _ingestor(encoder, client).ingest([corpus])
    before = {p.id for p in _all_points(client)}
    (corpus / "short.md").write_bytes(b"\xff\xfe\x00binary\x00")  # unreadable now: its points must survive
    (corpus / "long.txt").unlink()
    report = _ingestor(encoder, client).ingest([corpus], prune=True)
    assert report.skipped and report.pruned is None
    assert {p.id for p in _all_points(client)} == before


def test_existing_collection_with_other_vector_size_is_refused_before_writing(encoder, client, corpus):
    client.create_collection("docs", vectors_config=models.VectorParams(size=7, distance=models.Distance.COSINE))
    with pytest.raises(CollectionMismatchError, match="vector size 7"):
        _ingestor(encoder, client).ingest([corpus])
    assert client.count("docs").count == 0


def test_existing_collection_with_other_distance_is_refused(encoder, client, corpus):
    client.create_collection("docs", vectors_config=models.VectorParams(size=encoder.embedding_dim,
                                                                        distance=models.Distance.EUCLID))
    with pytest.raises(CollectionMismatchError, match="distance Euclid"):
        _ingestor(encoder, client).ingest([corpus])


def test_collection_written_in_another_payload_layout_is_refused(encoder, client, corpus):
    _ingestor(encoder, client, layout="langchain").ingest([corpus / "short.md"])
    with pytest.raises(CollectionMismatchError, match="'langchain' payload layout"):
        _ingestor(encoder, client, layout="llm2vec").ingest([corpus])


def test_recreate_rebuilds_a_mismatched_collection(encoder, client, corpus):
    client.create_collection("docs", vectors_config=models.VectorParams(size=7, distance=models.Distance.COSINE))
    report = _ingestor(encoder, client).ingest([corpus / "short.md"], recreate=True)
    assert client.count("docs").count == report.chunks == report.encoded > 0


def test_chunks_longer_than_the_encoder_window_are_refused(encoder, client):
    with pytest.raises(ValueError, match="doc_max_length"):
        QdrantIngestor(encoder, client, "docs", chunk_tokens=encoder.doc_max_length + 1)


@pytest.mark.parametrize("layout", ["llm2vec", "langchain", "llamaindex"])
def test_search_returns_the_exact_chunk_first_in_every_layout(encoder, client, corpus, layout):
    if layout == "llamaindex":
        pytest.importorskip("llama_index.core")
    _ingestor(encoder, client, layout=layout).ingest([corpus])
    hits = search(encoder, client, "docs", "Where is the invoice?", k=3, instruction=None)
    assert len(hits) == 3
    assert hits[0].text == "Where is the invoice?" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].metadata["topic"] == "billing" and hits[0].metadata["chunk_index"] == 0
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_records_with_a_duplicate_id_are_reported_and_only_the_first_is_kept(encoder, client, tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in [(1, "first"), (1, "second")]))
    report = _ingestor(encoder, client).ingest([path], id_field="id")
    assert [p.payload["text"] for p in _all_points(client)] == ["first"]
    assert [s.reason for s in report.skipped] == ["duplicate document id (kept the first one)"]
    assert _ingestor(encoder, client).ingest([path], id_field="id").encoded == 0


def test_embedded_store_is_switched_to_fast_crash_safe_journaling(encoder, client, corpus):
    _ingestor(encoder, client).ingest([corpus / "short.md"])
    connection = client._client.collections["docs"].storage.storage
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_searching_a_collection_of_another_vector_size_says_which_model_to_use(encoder, client):
    client.create_collection("docs", vectors_config=models.VectorParams(size=5, distance=models.Distance.COSINE))
    with pytest.raises(CollectionMismatchError, match="the model it was indexed with"):
        search(encoder, client, "docs", "anything")


class _CountingTokenizer:
    """The real tokenizer, recording every string it tokenizes."""

    def __init__(self, real):
        self._real, self.seen = real, []

    def __call__(self, texts, *args, **kwargs):
        self.seen.extend([texts] if isinstance(texts, str) else texts)
        return self._real(texts, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_each_document_is_tokenized_once_and_short_ones_get_encodes_own_vector(tiny_llama_dir, client, corpus):
    from llm2vec_plugins.integrations.qdrant.store import PROBE_TEXT

    encoder = LLM2Vec.from_pretrained(tiny_llama_dir)
    counting = encoder.tokenizer = _CountingTokenizer(encoder.tokenizer)
    report = _ingestor(encoder, client).ingest([corpus])
    documents = [d.text.strip() for d in read_documents([corpus])]
    assert sorted(t for t in counting.seen if t != PROBE_TEXT) == sorted(documents)  # once each, nothing else
    points, _ = client.scroll("docs", limit=10_000, with_payload=True, with_vectors=True)
    assert report.chunks == len(points) > len(documents)  # the long document has several chunks
    for point in points:
        if point.payload["text"] in documents:  # a document that fits in one chunk: exactly encode(text)
            expected = encoder.encode([point.payload["text"]], normalize_embeddings=True)[0]
            np.testing.assert_allclose(point.vector, expected, rtol=1e-5, atol=1e-6)
