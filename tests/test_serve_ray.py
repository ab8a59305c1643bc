"""Replicas of the embeddings app behind Ray Serve (a local 2-CPU Ray instance, loopback HTTP)."""
from __future__ import annotations

import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from llm2vec_plugins.serving import ServeSettings  # noqa: E402
from llm2vec_plugins.serving.ray_serve import build_deployment  # noqa: E402
from llm2vec_plugins.shared import DEFAULT_QUERY_INSTRUCTION  # noqa: E402
from tests.test_serve_cli import free_port  # noqa: E402

TEXTS = ["A man is playing a guitar on the street.", "The quick brown fox jumps over the lazy dog."]


@pytest.mark.slow
def test_two_ray_serve_replicas_serve_the_in_process_vectors(tiny_llama_dir):
    from llm2vec_plugins import LLM2Vec

    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        settings = ServeSettings(model=str(tiny_llama_dir), served_model_name="tiny")
        serve.run(build_deployment(settings, num_replicas=2, cpus_per_replica=0.5), route_prefix="/")
        status = serve.status().applications["default"].deployments["llm2vec-embeddings"]
        assert status.replica_states.get("RUNNING") == 2

        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        model = LLM2Vec.from_pretrained(tiny_llama_dir)
        deadline = time.monotonic() + 30
        for _ in range(8):  # several requests, so that both replicas answer some (Ray routes them)
            docs = np.array([d.embedding for d in client.embeddings.create(model="tiny", input=TEXTS).data])
            assert ((docs * model.encode(TEXTS, normalize_embeddings=True)).sum(1) >= 0.99999).all()
            assert time.monotonic() < deadline
        query = client.embeddings.create(model="tiny:query", input=TEXTS[:1]).data[0].embedding
        expected = model.encode([[DEFAULT_QUERY_INSTRUCTION, TEXTS[0]]], normalize_embeddings=True)[0]
        assert float(np.dot(query, expected)) >= 0.99999

        bad = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json={"input": ""}, timeout=30)
        assert bad.status_code == 400 and "empty string" in bad.json()["error"]["message"]
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json()["status"] == "ok"
    finally:
        serve.shutdown()
        ray.shutdown()
