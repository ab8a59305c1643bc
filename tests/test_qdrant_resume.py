"""SIGKILL the real `llm2vec index` process mid-ingest, rerun it: exactly the expected points, none lost or doubled,
on the local path and on the Ray path (same pipeline, Ray reading and encoding).

The test slows the first run with LLM2VEC_TEST_UPLOAD_DELAY (seconds slept after each uploaded group of
chunks, a test-only hook in integrations/qdrant/ingest.py) so that the kill reliably lands mid-way.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("qdrant_client")

from llm2vec_plugins.integrations.qdrant.chunking import TokenChunker  # noqa: E402
from llm2vec_plugins.integrations.qdrant.documents import read_documents  # noqa: E402
from llm2vec_plugins.integrations.qdrant import chunk_records, connect  # noqa: E402

CHUNK_TOKENS, OVERLAP = 32, 4


def _command(tiny_llama_dir, corpus, store, path):
    ray = ["--ray", "--ray-encoders", "1"] if path == "ray" else []
    return [sys.executable, "-m", "llm2vec_plugins.cli.main", "index", str(corpus), "--collection", "docs",
            "--qdrant-path", str(store), "--model", str(tiny_llama_dir),
            "--chunk-tokens", str(CHUNK_TOKENS), "--chunk-overlap", str(OVERLAP), *ray]


def _expected_ids(tiny_llama_dir, corpus) -> set[str]:
    from llm2vec_plugins import LLM2Vec
    from llm2vec_plugins.integrations.qdrant.store import EncoderIdentity

    model = LLM2Vec.from_pretrained(tiny_llama_dir)
    chunker = TokenChunker(model.tokenizer, CHUNK_TOKENS, OVERLAP)
    key = EncoderIdentity(model.identity).key  # point ids carry the encoder's identity
    return {r.point_id for d in read_documents([corpus]) for r in chunk_records(d, chunker, key)}


def _stored_ids(store) -> list[str]:
    client = connect(path=store)
    try:
        points, _ = client.scroll("docs", limit=100_000, with_payload=False)
        return [str(p.id) for p in points]
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["local", "ray"])
def test_sigkilled_ingest_finishes_on_rerun_with_exactly_the_expected_points(tiny_llama_dir, tmp_path, path):
    if path == "ray":
        pytest.importorskip("ray.data")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for d in range(24):
        (corpus / f"doc{d:02}.txt").write_text(" ".join(f"Doc {d} sentence {i} on topic {i % 7}." for i in range(80)))
    store = tmp_path / "store"
    expected = _expected_ids(tiny_llama_dir, corpus)
    assert len(expected) > 3 * 128  # several pipeline groups of 128 chunks

    env = {**os.environ, "LLM2VEC_TEST_UPLOAD_DELAY": "2"}
    process = subprocess.Popen(_command(tiny_llama_dir, corpus, store, path), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = bytearray()
    reader = threading.Thread(target=lambda: [stderr.extend(b) for b in iter(lambda: process.stderr.read1(4096), b"")],
                              daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    uploaded = 0
    while uploaded == 0 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        counts = [int(n) for n in re.findall(rb"Indexing: (\d+)chunk", bytes(stderr))]
        uploaded = max(counts, default=0)
    assert 0 < uploaded < len(expected), bytes(stderr).decode(errors="replace")[-2000:]
    process.send_signal(signal.SIGKILL)
    process.wait()
    reader.join(timeout=10)

    partial = _stored_ids(store)
    assert 0 < len(partial) < len(expected)
    assert set(partial) <= expected

    rerun = subprocess.run(_command(tiny_llama_dir, corpus, store, path), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(partial)} unchanged" in rerun.stdout
    stored = _stored_ids(store)
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == expected
