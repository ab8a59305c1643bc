"""A collection holds the vectors of one encoder, and llm2vec only ever touches the points it wrote:
through the real CLI on embedded Qdrant, and through the Ray path on a local Ray instance."""
from __future__ import annotations

import json
import shutil
import uuid

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

from llm2vec_plugins import LLM2Vec  # noqa: E402
from llm2vec_plugins.cli.main import app  # noqa: E402
from llm2vec_plugins.integrations.qdrant import connect  # noqa: E402
from tests.test_cli_errors import flat, runner  # noqa: E402


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a.txt").write_text("The invoice is in the billing tab.")
    (root / "b.txt").write_text("Reset your password in the settings page.")
    (root / "c.md").write_text("Refunds take five working days.")
    return root


def _index(model, store, corpus, *extra, layout="llm2vec"):
    return runner.invoke(app, ["index", str(corpus), "--collection", "docs", "--qdrant-path", str(store),
                               "--model", str(model), "--payload-layout", layout, "--chunk-tokens", "32",
                               "--chunk-overlap", "4", *map(str, extra)])


def _vectors(store):
    client = connect(path=store)
    try:
        points, _ = client.scroll("docs", limit=1000, with_payload=True, with_vectors=True)
        return {str(p.id): (p.payload, np.asarray(p.vector)) for p in points}
    finally:
        client.close()


def _min_cos_to(model_dir, points):
    """Smallest cosine between the stored vectors and `model_dir`'s own vectors of the stored texts."""
    texts = [payload["text"] for payload, _ in points.values()]
    fresh = LLM2Vec.from_pretrained(model_dir).encode(texts, normalize_embeddings=True)
    stored = np.stack([v for _, v in points.values()])
    return float((fresh * stored).sum(axis=1).min())


def test_another_encoder_is_refused_before_any_write(tiny_model_dirs, tmp_path, corpus):
    first, second = tiny_model_dirs("llama"), tiny_model_dirs("mistral")  # both give 32-dim vectors
    store = tmp_path / "store"
    assert _index(first, store, corpus).exit_code == 0
    before = _vectors(store)
    result = _index(second, store, corpus)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert str(first) in flat(result.output) and str(second) in flat(result.output)  # both encoders named
    after = _vectors(store)
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[k][1], before[k][1]) for k in before)


def test_recreate_re_encodes_everything_with_the_new_encoder(tiny_model_dirs, tmp_path, corpus):
    first, second = tiny_model_dirs("llama"), tiny_model_dirs("mistral")
    store = tmp_path / "store"
    assert _index(first, store, corpus).exit_code == 0
    result = _index(second, store, corpus, "--recreate")
    assert result.exit_code == 0, result.output
    points = _vectors(store)
    assert len(points) == 3 and _min_cos_to(second, points) > 0.9999
    search = runner.invoke(app, ["search", "invoice", "-c", "docs", "--qdrant-path", str(store), "--model", str(first)])
    assert search.exit_code == 2 and "would search a space" in flat(search.output)


def test_weights_retrained_under_the_same_name_are_refused(tiny_model_dirs, tmp_path, corpus):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dirs("llama"), model)
    store = tmp_path / "store"
    assert _index(model, store, corpus).exit_code == 0
    from safetensors.torch import load_file, save_file

    weights = load_file(model / "model.safetensors")  # same folder, same settings, other weights
    for name in weights:
        if "mlp" in name:
            weights[name] = weights[name] * -2.0
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    result = _index(model, store, corpus)
    assert result.exit_code == 2 and "retrained" in flat(result.output)


def test_prune_keeps_points_that_other_tools_wrote(tiny_llama_dir, tmp_path, corpus):
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import models

    from llm2vec_plugins.integrations.langchain import LLM2VecEmbeddings

    store = tmp_path / "store"
    assert _index(tiny_llama_dir, store, corpus, layout="langchain").exit_code == 0
    client = connect(path=store)
    try:
        vectorstore = QdrantVectorStore(client, "docs", embedding=LLM2VecEmbeddings(model=str(tiny_llama_dir)))
        added = vectorstore.add_texts(["a note written through LangChain", "another one"])
        client.upsert("docs", points=[models.PointStruct(id=424242, vector=[0.1] * 32,
                                                         payload={"page_content": "by hand", "metadata": {}})])
    finally:
        client.close()
    (corpus / "b.txt").unlink()
    result = _index(tiny_llama_dir, store, corpus, "--prune", layout="langchain")
    assert result.exit_code == 0, result.output
    assert "pruned 1 points" in result.output
    ids = set(_vectors(store))
    assert {str(uuid.UUID(a)) for a in added} <= ids and "424242" in ids
    assert len(ids) == 2 + 3  # a.txt, c.md, two LangChain points and the hand-written one


def test_a_collection_of_an_older_version_without_identity_is_refused(tiny_llama_dir, tmp_path, corpus):
    from qdrant_client import models

    store = tmp_path / "store"
    client = connect(path=store)
    try:
        client.create_collection("docs", vectors_config=models.VectorParams(size=32, distance=models.Distance.COSINE))
        client.upsert("docs", points=[models.PointStruct(id=1, vector=[0.1] * 32, payload={
            "text": "old", "source_id": "/x.txt", "source": "/x.txt", "chunk_index": 0, "content_hash": "h",
            "metadata": {}})])
    finally:
        client.close()
    result = _index(tiny_llama_dir, store, corpus)
    assert result.exit_code == 2 and "recorded no encoder" in flat(result.output)


@pytest.mark.slow
def test_ray_path_gives_the_same_points_and_keeps_every_guarantee(tiny_model_dirs, tmp_path, corpus):
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    from qdrant_client import models

    from llm2vec_plugins.integrations.qdrant import CollectionMismatchError, QdrantIngestor
    from llm2vec_plugins.integrations.qdrant.distributed import ingest_with_ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        model = tiny_model_dirs("llama")
        kw = dict(chunk_tokens=32, overlap=4)
        (corpus / "dup.jsonl").write_text(json.dumps({"id": 1, "text": "one"}) + "\n" + json.dumps({"id": 1, "text": "two"}) + "\n")
        ray_store, local_store = tmp_path / "ray", tmp_path / "local"
        first = ingest_with_ray([corpus], "docs", model=str(model), qdrant_path=ray_store, id_field="id",
                                num_encoders=2, group_chunks=2, **kw)
        assert first.encoded == 4 and [s.reason for s in first.skipped] == ["duplicate document id (kept the first one)"]
        client = connect(path=ray_store)
        try:  # a point another tool wrote
            client.upsert("docs", points=[models.PointStruct(id=7, vector=[0.1] * 32, payload={"note": "foreign"})])
        finally:
            client.close()
        again = ingest_with_ray([corpus], "docs", model=str(model), qdrant_path=ray_store, id_field="id",
                                num_encoders=2, **kw)
        assert again.encoded == 0 and again.unchanged == 4  # idempotent
        (corpus / "a.txt").write_text("The invoice moved to the payments tab.")
        (corpus / "c.md").unlink()
        changed = ingest_with_ray([corpus], "docs", model=str(model), qdrant_path=ray_store, id_field="id",
                                  num_encoders=2, prune=True, **kw)
        assert changed.encoded == 1 and changed.stale_deleted == 1 and changed.pruned == 1
        with pytest.raises(CollectionMismatchError, match="another encoder"):
            ingest_with_ray([corpus], "docs", model=str(tiny_model_dirs("mistral")), qdrant_path=ray_store,
                            num_encoders=1, **kw)
        local = connect(path=local_store)
        try:
            QdrantIngestor(LLM2Vec.from_pretrained(model), local, "docs", **kw).ingest([corpus], id_field="id")
        finally:
            local.close()
        ray_points, local_points = _vectors(ray_store), _vectors(local_store)
        assert ray_points.pop("7", None) is not None  # the foreign point survived prune
        assert ray_points.keys() == local_points.keys()
        for key in local_points:
            assert ray_points[key][0] == local_points[key][0]
            np.testing.assert_allclose(ray_points[key][1], local_points[key][1], rtol=1e-4, atol=1e-5)
    finally:
        ray.shutdown()
