"""The Ray runner on a local Ray instance (2 encoder actors) writing to embedded Qdrant, tiny model."""
from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("qdrant_client")

from llm2vec_plugins import LLM2Vec  # noqa: E402
from llm2vec_plugins.integrations.qdrant import QdrantIngestor, connect  # noqa: E402
from llm2vec_plugins.integrations.qdrant.distributed import ingest_with_ray  # noqa: E402

KW = dict(chunk_tokens=32, overlap=4)


@pytest.fixture(scope="module")
def local_ray():
    # 2 CPUs, both held by the 2 encoder actors: file reading must still make progress (it asks for 0 CPUs).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_ingest_matches_the_local_ingestor_and_is_idempotent(local_ray, tiny_llama_dir, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for d in range(6):
        (corpus / f"d{d}.txt").write_text(" ".join(f"Doc {d} line {i}." for i in range(40)))
    (corpus / "faq.jsonl").write_text(json.dumps({"text": "Where is the invoice?", "topic": "billing"}) + "\n")
    (corpus / "empty.txt").write_text("")

    report = ingest_with_ray([corpus], "docs", model=str(tiny_llama_dir), qdrant_path=tmp_path / "ray-store",
                             num_encoders=2, group_chunks=4, **KW)
    assert report.documents == 7 and report.encoded == report.chunks > 7
    assert [s.reason for s in report.skipped] == ["empty file"]

    local = connect(path=tmp_path / "local-store")
    local_report = QdrantIngestor(LLM2Vec.from_pretrained(tiny_llama_dir), local, "docs", **KW).ingest([corpus])
    client = connect(path=tmp_path / "ray-store")
    try:
        ray_points = {str(p.id): p for p in client.scroll("docs", limit=10_000, with_vectors=True)[0]}
        local_points = {str(p.id): p for p in local.scroll("docs", limit=10_000, with_vectors=True)[0]}
        assert ray_points.keys() == local_points.keys() and len(ray_points) == local_report.chunks
        some = next(iter(ray_points))
        assert ray_points[some].payload == local_points[some].payload
        assert ray_points[some].vector == pytest.approx(local_points[some].vector, abs=1e-4)
    finally:
        client.close()
        local.close()

    (corpus / "d0.txt").write_text("Doc zero was rewritten.")
    again = ingest_with_ray([corpus], "docs", model=str(tiny_llama_dir), qdrant_path=tmp_path / "ray-store",
                            num_encoders=2, group_chunks=4, **KW)
    assert again.encoded == 1 and again.stale_deleted > 1
    client = connect(path=tmp_path / "ray-store")
    try:
        assert client.count("docs").count == report.chunks - again.stale_deleted + 1
    finally:
        client.close()
