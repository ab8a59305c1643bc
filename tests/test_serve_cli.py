"""`llm2vec serve` as a real process: it answers on a loopback port, and SIGTERM lets the request in
flight finish before the process exits."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_sigterm_finishes_the_request_in_flight_then_exits_cleanly(tiny_llama_dir):
    from llm2vec_plugins import LLM2Vec

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "llm2vec_plugins.cli.main", "serve", "--model", str(tiny_llama_dir),
         "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
         "--max-request-tokens", "400000", "--max-queue-tokens", "400000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the server did not come up in 120 s"
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        texts = [f"two dogs run in a field number {i} " * 12 for i in range(1024)]  # ~220k tokens: seconds here
        result: dict = {}

        def post() -> None:
            result["response"] = httpx.post(url + "/v1/embeddings", json={"model": "tiny", "input": texts,
                                                                          "encoding_format": "float"}, timeout=120)

        thread = threading.Thread(target=post)
        thread.start()
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        thread.join(120)
        # uvicorn re-raises the signal once it has shut down, so the exit status reads "terminated".
        assert process.wait(60) in (0, -signal.SIGTERM)
        log = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    response = result["response"]
    assert response.status_code == 200, response.text
    assert "Waiting for connections to close" in log  # the request really was in flight at SIGTERM
    got = np.array([d["embedding"] for d in response.json()["data"]])
    expected = LLM2Vec.from_pretrained(tiny_llama_dir).encode(texts, normalize_embeddings=True)
    assert ((got * expected).sum(1) >= 0.99999).all()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", timeout=2)
