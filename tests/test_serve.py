"""`llm2vec serve`: the real server on a loopback port (tiny model), called by the real openai client,
LangChain's OpenAIEmbeddings and raw HTTP; vectors compared with in-process encode()."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")

import uvicorn  # noqa: E402

from llm2vec_plugins.serving import (  # noqa: E402
    DynamicBatcher, EmbeddingService, ServeSettings, ShuttingDown, create_app,
)
from llm2vec_plugins.shared import DEFAULT_QUERY_INSTRUCTION  # noqa: E402

TEXTS = ["A man is playing a guitar on the street.", "The quick brown fox jumps over the lazy dog.",
         "Two dogs run in a field.", "Emoji 😀 and CJK 中文字符 and symbols !@#$%^&*()."]
INSTRUCTION = "Retrieve semantically similar text:"
NAME = "tiny"


# ---------------------------------------------------------------------------------------------
# A real uvicorn server on 127.0.0.1, in a thread of the test process
# ---------------------------------------------------------------------------------------------
class Running:
    def __init__(self, service: EmbeddingService, server: uvicorn.Server, thread: threading.Thread, url: str):
        self.service, self.server, self.thread, self.url = service, server, thread, url

    @property
    def llm2vec(self):
        return self.service.encoder.llm2vec

    def client(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", **({"api_key": "unused", "max_retries": 0} | kwargs))

    def post(self, body=None, **kwargs) -> httpx.Response:
        return httpx.post(self.url + "/v1/embeddings", json=body, timeout=30, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the server did not stop"


@contextlib.contextmanager
def serving(model_dir, **settings):
    service = EmbeddingService.from_settings(ServeSettings(model=str(model_dir), served_model_name=NAME, **settings))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning", timeout_graceful_shutdown=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    running = Running(service, server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}")
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop()


@pytest.fixture(scope="module")
def served(tiny_llama_dir):
    with serving(tiny_llama_dir) as running:
        yield running


def assert_same_vectors(got, expected) -> None:
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape
    cosine = (got * expected).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
    assert cosine.min() >= 0.99999, cosine


def vectors(response) -> np.ndarray:
    assert [d.index for d in response.data] == list(range(len(response.data)))
    return np.array([d.embedding for d in response.data])


class BlockedEncode:
    """Spy on the real encode whose FIRST call waits until released: requests sent meanwhile queue up."""

    def __init__(self, monkeypatch, llm2vec) -> None:
        self.calls: list[list] = []
        self.entered, self.release = threading.Event(), threading.Event()
        real = llm2vec.encode

        def spy(sentences, *args, **kwargs):
            self.calls.append(list(sentences))
            if len(self.calls) == 1:
                self.entered.set()
                assert self.release.wait(30), "never released"
            return real(sentences, *args, **kwargs)

        monkeypatch.setattr(llm2vec, "encode", spy)


def send_behind_a_blocked_encode(running, blocked: BlockedEncode, inputs: list) -> list:
    """Send inputs[0] and hold it in the encoder, queue every other request behind it, then release:
    the responses, in input order."""
    client = running.client()
    with ThreadPoolExecutor(len(inputs)) as pool:
        first = pool.submit(client.embeddings.create, model=NAME, input=inputs[0])
        assert blocked.entered.wait(30)
        rest = [pool.submit(client.embeddings.create, model=NAME, input=x) for x in inputs[1:]]
        wait_until(lambda: running.service.batcher.queue_depth == len(rest), f"{len(rest)} queued requests")
        blocked.release.set()
        return [first.result(30)] + [r.result(30) for r in rest]


def wait_until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# ---------------------------------------------------------------------------------------------
# Same vectors as in-process encode(), through the real clients
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{}, {"encoding_format": "float"}], ids=["default (base64)", "float"])
def test_openai_client_gets_the_in_process_vectors(served, options):
    # Left out, the client asks for base64 and decodes it itself.
    response = served.client().embeddings.create(model=NAME, input=TEXTS, **options)
    assert response.model == NAME
    assert_same_vectors(vectors(response), served.llm2vec.encode(TEXTS, normalize_embeddings=True))


def test_base64_is_little_endian_float32(served):
    response = served.client().embeddings.create(model=NAME, input=TEXTS, encoding_format="base64")
    rows = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in response.data]
    assert_same_vectors(rows, served.llm2vec.encode(TEXTS, normalize_embeddings=True))


def test_a_single_string_input_gives_one_vector(served):
    response = served.client().embeddings.create(model=NAME, input=TEXTS[0])
    assert_same_vectors(vectors(response), served.llm2vec.encode(TEXTS[:1], normalize_embeddings=True))


def test_langchain_openai_embeddings_gets_the_in_process_vectors(served):
    from langchain_openai import OpenAIEmbeddings

    common = dict(base_url=served.url + "/v1", api_key="unused", check_embedding_ctx_length=False, max_retries=0)
    documents = OpenAIEmbeddings(model=NAME, **common)
    queries = OpenAIEmbeddings(model=NAME + ":query", **common)  # the query id: retrieval instruction
    assert_same_vectors(documents.embed_documents(TEXTS), served.llm2vec.encode(TEXTS, normalize_embeddings=True))
    assert_same_vectors([queries.embed_query("what is the fox doing?")],
                        served.llm2vec.encode([[DEFAULT_QUERY_INSTRUCTION, "what is the fox doing?"]],
                                              normalize_embeddings=True))


def test_langchain_length_check_with_the_models_own_tokenizer_sends_text(served, tiny_llama_dir):
    from langchain_openai import OpenAIEmbeddings

    # check_embedding_ctx_length stays on, but counts with this model's tokenizer and sends text chunks.
    embeddings = OpenAIEmbeddings(model=NAME, base_url=served.url + "/v1", api_key="unused", max_retries=0,
                                  tiktoken_enabled=False, tiktoken_model_name=str(tiny_llama_dir))
    assert_same_vectors(embeddings.embed_documents(TEXTS), served.llm2vec.encode(TEXTS, normalize_embeddings=True))


def test_llama_index_openai_like_embedding_gets_the_in_process_vectors(served):
    openai_like = pytest.importorskip("llama_index.embeddings.openai_like")

    common = dict(api_base=served.url + "/v1", api_key="unused", max_retries=0)
    documents = openai_like.OpenAILikeEmbedding(model_name=NAME, **common)
    queries = openai_like.OpenAILikeEmbedding(model_name=NAME + ":query", **common)
    assert_same_vectors(documents.get_text_embedding_batch(TEXTS),
                        served.llm2vec.encode(TEXTS, normalize_embeddings=True))
    assert_same_vectors([queries.get_query_embedding("what is the fox doing?")],
                        served.llm2vec.encode([[DEFAULT_QUERY_INSTRUCTION, "what is the fox doing?"]],
                                              normalize_embeddings=True))


@pytest.mark.parametrize("payload", [[[5, 17, 42]], [5, 17, 42]], ids=["batch", "single"])
def test_token_id_input_is_refused_with_the_langchain_hint(served, payload):
    response = served.post({"model": NAME, "input": payload})
    assert response.status_code == 400
    assert "check_embedding_ctx_length=False" in response.json()["error"]["message"]


def test_async_openai_client_gets_the_in_process_vectors(served):
    async def embed_all():
        async with openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0) as client:
            return await asyncio.gather(*(client.embeddings.create(model=NAME, input=[t]) for t in TEXTS))

    got = [vectors(r)[0] for r in asyncio.run(embed_all())]
    assert_same_vectors(got, served.llm2vec.encode(TEXTS, normalize_embeddings=True))


# ---------------------------------------------------------------------------------------------
# Instructions, the LLM2Vec way
# ---------------------------------------------------------------------------------------------
def test_instructions_are_attended_but_not_pooled(served):
    client = served.client()
    expected = served.llm2vec.encode([[INSTRUCTION, t] for t in TEXTS], normalize_embeddings=True)
    pairs = client.embeddings.create(model=NAME, input=[[INSTRUCTION, t] for t in TEXTS])
    field = client.embeddings.create(model=NAME, input=TEXTS, extra_body={"instruction": INSTRUCTION})
    assert_same_vectors(vectors(pairs), expected)
    assert_same_vectors(vectors(field), expected)
    # Not the plain texts' vectors, and not the instruction pooled in with the text.
    pooled_too = served.llm2vec.with_settings(skip_instruction=False).encode([[INSTRUCTION, t] for t in TEXTS],
                                                                              normalize_embeddings=True)
    for other in (served.llm2vec.encode(TEXTS, normalize_embeddings=True), pooled_too):
        assert ((vectors(pairs) * other).sum(1) < 0.9999).all()


def test_query_input_type_and_query_model_use_the_query_instruction(served):
    client = served.client()
    expected = served.llm2vec.encode([[DEFAULT_QUERY_INSTRUCTION, t] for t in TEXTS], normalize_embeddings=True)
    assert_same_vectors(vectors(client.embeddings.create(model=NAME, input=TEXTS,
                                                         extra_body={"input_type": "query"})), expected)
    assert_same_vectors(vectors(client.embeddings.create(model=NAME + ":query", input=TEXTS)), expected)
    # Documents get no instruction by default, as in the adapters.
    assert_same_vectors(vectors(client.embeddings.create(model=NAME, input=TEXTS,
                                                         extra_body={"input_type": "document"})),
                        served.llm2vec.encode(TEXTS, normalize_embeddings=True))


def test_usage_counts_the_tokens_the_encoder_reads(served):
    sentences = [TEXTS[0], [INSTRUCTION, TEXTS[1]]]
    response = served.client().embeddings.create(model=NAME, input=sentences)
    tokens = int(served.llm2vec.tokenize(sentences)["attention_mask"].sum())
    assert response.usage.prompt_tokens == response.usage.total_tokens == tokens


def test_dimensions_equal_to_the_models_are_accepted(served):
    response = served.client().embeddings.create(model=NAME, input=TEXTS[:1], dimensions=served.service.dim)
    assert len(response.data[0].embedding) == served.service.dim


# ---------------------------------------------------------------------------------------------
# Models, health, metrics
# ---------------------------------------------------------------------------------------------
def test_models_lists_the_served_model_and_its_query_variant(served):
    assert [m.id for m in served.client().models.list()] == [NAME, NAME + ":query"]


def test_health_reports_the_model_and_its_dimension(served):
    response = httpx.get(served.url + "/health")
    assert response.status_code == 200
    assert response.json() | {"queue_requests": 0} == {"status": "ok", "model": NAME,
                                                       "dimensions": served.service.dim, "queue_requests": 0}


def test_metrics_report_queue_batches_tokens_and_latency(served):
    served.client().embeddings.create(model=NAME, input=TEXTS)
    text = httpx.get(served.url + "/metrics").text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line and line[0] != "#"}
    assert values["llm2vec_queue_requests"] == 0
    assert values["llm2vec_tokens_total"] >= len(TEXTS)
    assert values["llm2vec_batch_requests_count"] >= 1 and values["llm2vec_batch_inputs_sum"] >= len(TEXTS)
    assert values['llm2vec_request_duration_seconds_count{route="/v1/embeddings"}'] >= 1
    assert values['llm2vec_requests_total{route="/v1/embeddings",status="200"}'] >= 1
    assert "llm2vec_encode_duration_seconds_bucket" in text


# ---------------------------------------------------------------------------------------------
# Dynamic batching and back-pressure
# ---------------------------------------------------------------------------------------------
def test_requests_waiting_together_are_encoded_in_one_call(served, monkeypatch):
    blocked = BlockedEncode(monkeypatch, served.llm2vec)
    inputs = [[f"request {i}: {t}" for t in TEXTS[: 1 + i % 3]] for i in range(7)]
    responses = send_behind_a_blocked_encode(served, blocked, inputs)
    assert [len(c) for c in blocked.calls] == [len(inputs[0]), sum(len(x) for x in inputs[1:])]
    for x, response in zip(inputs, responses):  # each request got its own rows back
        assert_same_vectors(vectors(response), served.llm2vec.encode(x, normalize_embeddings=True))


def test_one_encode_call_stays_within_the_token_budget(tiny_llama_dir, monkeypatch):
    with serving(tiny_llama_dir, max_batch_tokens=40) as running:
        blocked = BlockedEncode(monkeypatch, running.llm2vec)
        inputs = [[f"request {i}: two dogs run in a field."] for i in range(7)]
        tokens = [int(running.llm2vec.tokenize(x)["attention_mask"].sum()) for x in inputs]
        assert 40 // 3 < max(tokens) <= 40 // 2  # two requests fit the budget, three do not
        assert all(send_behind_a_blocked_encode(running, blocked, inputs))
        assert [len(c) for c in blocked.calls] == [1, 2, 2, 2]
        for call in blocked.calls:
            assert int(running.llm2vec.tokenize(call)["attention_mask"].sum()) <= 40


def test_a_full_queue_answers_429_and_the_server_recovers(tiny_llama_dir, monkeypatch):
    with serving(tiny_llama_dir, max_queue_tokens=60, max_request_tokens=30) as running:
        blocked = BlockedEncode(monkeypatch, running.llm2vec)
        body = {"model": NAME, "input": ["two dogs run in a field."]}
        fits = 60 // int(running.llm2vec.tokenize(body["input"])["attention_mask"].sum())
        with ThreadPoolExecutor(fits + 1) as pool:
            first = pool.submit(running.post, body)
            assert blocked.entered.wait(30)  # in the encoder, no longer queued
            queued = [pool.submit(running.post, body) for _ in range(fits)]
            wait_until(lambda: running.service.batcher.queue_depth == fits, f"{fits} queued requests")
            refused = running.post(body)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            assert "queue is full" in refused.json()["error"]["message"]
            with pytest.raises(openai.RateLimitError):
                running.client().embeddings.create(**body)
            blocked.release.set()
            assert [f.result(30).status_code for f in [first, *queued]] == [200] * (fits + 1)
        assert running.post(body).status_code == 200
        assert running.service.batcher.queued_tokens == 0


async def test_a_batch_wait_lets_requests_on_their_way_join_one_call():
    calls = []

    def encode(sentences):
        calls.append(list(sentences))
        return np.zeros((len(sentences), 2), dtype=np.float32)

    batcher = DynamicBatcher(encode, max_batch_tokens=100, max_queue_tokens=1000, max_wait=0.5)
    first = asyncio.create_task(batcher.submit(["a"], tokens=1))
    await asyncio.sleep(0.05)  # the encoder is free, but waits for more
    second = asyncio.create_task(batcher.submit(["b", "c"], tokens=2))
    assert [len(r) for r in await asyncio.gather(first, second)] == [1, 2]
    assert calls == [["a", "b", "c"]]
    await batcher.close()


async def test_a_full_token_budget_does_not_wait():
    batcher = DynamicBatcher(lambda s: np.zeros((len(s), 2), dtype=np.float32), max_batch_tokens=10,
                             max_queue_tokens=100, max_wait=30)
    start = time.monotonic()
    await asyncio.wait_for(batcher.submit(["a long one"], tokens=10), timeout=10)
    assert time.monotonic() - start < 5
    await batcher.close()
    with pytest.raises(ShuttingDown):
        await batcher.submit(["late"], tokens=1)


# ---------------------------------------------------------------------------------------------
# Bad input: a clear 4xx each, and the server keeps serving
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def strict(tiny_llama_dir):
    with serving(tiny_llama_dir, max_items=8, max_request_tokens=200, max_queue_tokens=1000,
                 max_body_bytes=4096) as running:
        yield running


BAD_BODIES = [
    ("malformed JSON", b'{"input": ["a", ', 400, "not valid JSON"),
    ("empty body", b"", 400, "body is empty"),
    ("array body", b'["a"]', 400, "must be a JSON object, got list"),
    ("input a number", {"input": 3}, 400, "input must be a string or a list of strings, got int"),
    ("input null", {"input": None}, 400, "got null"),
    ("an item a number", {"input": ["a", 3]}, 400, "input[1] must be a string or an [instruction, text] pair"),
    ("an item an object", {"input": [{"text": "a"}]}, 400, "input[0] must be a string"),
    ("an empty string", {"input": ""}, 400, "input is an empty string"),
    ("an empty item", {"input": ["a", ""]}, 400, "input[1] is an empty string"),
    ("an empty list", {"input": []}, 400, "input is an empty list"),
    ("a pair of three", {"input": [["i", "t", "x"]]}, 400, "[instruction, text] pair of two strings"),
    ("a pair with an empty text", {"input": [["i", ""]]}, 400, "input[0] has an empty text"),
    ("missing input", {"model": NAME}, 400, "missing required field 'input'"),
    ("unknown field", {"input": "a", "temperature": 0}, 400, "unknown field 'temperature'"),
    ("bad encoding_format", {"input": "a", "encoding_format": "int8"}, 400, "encoding_format"),
    ("dimensions a string", {"input": "a", "dimensions": "many"}, 400, "dimensions"),
    ("dimensions not the model's", {"input": "a", "dimensions": 8}, 400, "dimensions=8 is not supported"),
    ("model a number", {"input": "a", "model": 7}, 400, "model"),
    ("instruction and input_type", {"input": "a", "instruction": "x", "input_type": "query"}, 400, "not both"),
    ("unknown input_type", {"input": "a", "input_type": "passage"}, 400, "input_type"),
    ("unknown model", {"input": "a", "model": "text-embedding-3-small"}, 404, "GET /v1/models lists"),
    ("too many items", {"input": ["a"] * 9}, 400, "9 items, more than this server's limit of 8"),
    ("too many tokens", {"input": ["two dogs run in a field. " * 6] * 5}, 400, "more than this server's limit of 200"),
    ("oversized body", {"input": "x" * 5000}, 413, "exceeds this server's limit of 4096 bytes"),
]


@pytest.mark.parametrize("body,status,message", [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES])
def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(strict, body, status, message):
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) \
        else {"json": body}
    response = httpx.post(strict.url + "/v1/embeddings", timeout=30, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"] and error["type"]
    assert strict.post({"model": NAME, "input": TEXTS[:2]}).status_code == 200


def test_an_oversized_chunked_body_is_refused_while_it_streams(strict):
    def chunks():  # no Content-Length: the limit must hold while reading
        yield b'{"input": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = httpx.post(strict.url + "/v1/embeddings", content=chunks(), timeout=30)
    assert response.status_code == 413
    assert strict.post({"model": NAME, "input": TEXTS[:2]}).status_code == 200


@pytest.mark.parametrize("method,path,status", [("GET", "/v1/embeddings", 405), ("POST", "/v1/chat/completions", 404)])
def test_wrong_routes_and_methods_answer_in_openais_error_shape(strict, method, path, status):
    response = httpx.request(method, strict.url + path, timeout=30)
    assert response.status_code == status and response.json()["error"]["message"]


def test_the_openai_client_raises_its_typed_error_for_a_bad_request(strict):
    with pytest.raises(openai.BadRequestError, match="input\\[1\\] is an empty string"):
        strict.client().embeddings.create(model=NAME, input=["a", ""])


def test_an_encoder_failure_is_a_500_and_the_server_keeps_serving(strict, monkeypatch):
    real = strict.llm2vec.encode
    monkeypatch.setattr(strict.llm2vec, "encode", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("GPU fell off")))
    response = strict.post({"model": NAME, "input": "a"})
    assert response.status_code == 500 and "GPU fell off" in response.json()["error"]["message"]
    monkeypatch.setattr(strict.llm2vec, "encode", real)
    assert strict.post({"model": NAME, "input": "a"}).status_code == 200


# ---------------------------------------------------------------------------------------------
# API key
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed(tiny_llama_dir):
    with serving(tiny_llama_dir, api_key="s3cret") as running:
        yield running


@pytest.mark.parametrize("headers,message", [({}, "missing API key"),
                                             ({"authorization": "Bearer wrong"}, "invalid API key"),
                                             ({"authorization": "Basic s3cret"}, "invalid API key")],
                         ids=["missing", "wrong", "not bearer"])
def test_a_missing_or_wrong_api_key_is_a_401(keyed, headers, message):
    response = keyed.post({"model": NAME, "input": "a"}, headers=headers)
    assert response.status_code == 401 and message in response.json()["error"]["message"]
    assert httpx.get(keyed.url + "/v1/models", headers=headers).status_code == 401


def test_the_right_api_key_is_served_and_health_needs_none(keyed):
    with pytest.raises(openai.AuthenticationError):
        keyed.client(api_key="wrong").embeddings.create(model=NAME, input="a")
    assert len(keyed.client(api_key="s3cret").embeddings.create(model=NAME, input="a").data) == 1
    assert httpx.get(keyed.url + "/health").status_code == 200
    assert httpx.get(keyed.url + "/metrics").status_code == 200


def test_the_api_key_is_checked_before_the_body_is_read(keyed):
    response = keyed.post(None, content=b"{not json", headers={"authorization": "Bearer wrong"})
    assert response.status_code == 401


# ---------------------------------------------------------------------------------------------
# Graceful shutdown
# ---------------------------------------------------------------------------------------------
def test_shutdown_finishes_the_requests_in_flight_and_queued(tiny_llama_dir, monkeypatch):
    with serving(tiny_llama_dir) as running:
        blocked = BlockedEncode(monkeypatch, running.llm2vec)
        with ThreadPoolExecutor(2) as pool:
            in_flight = pool.submit(running.post, {"model": NAME, "input": TEXTS[:2]})
            assert blocked.entered.wait(30)
            queued = pool.submit(running.post, {"model": NAME, "input": TEXTS[2:]})
            wait_until(lambda: running.service.batcher.queue_depth == 1, "a queued request")
            running.server.should_exit = True  # what SIGTERM does
            time.sleep(0.3)
            assert running.thread.is_alive()  # waiting for the requests, not gone
            with pytest.raises(httpx.ConnectError):  # no new connection is accepted
                httpx.get(running.url + "/health", timeout=5)
            blocked.release.set()
            assert in_flight.result(30).status_code == queued.result(30).status_code == 200
        running.thread.join(30)
        assert not running.thread.is_alive() and running.service.closing


# ---------------------------------------------------------------------------------------------
# The CLI command
# ---------------------------------------------------------------------------------------------
def test_cli_serve_is_registered_with_its_options():
    import typer

    from llm2vec_plugins.cli.main import app

    command = typer.main.get_command(app).commands["serve"]
    options = {opt for param in command.params for opt in param.opts}
    assert {"--model", "--peft-model", "--host", "--port", "--api-key", "--max-batch-tokens", "--max-queue-tokens",
            "--max-items", "--max-request-tokens", "--max-body-mb", "--ray-replicas"} <= options


def test_cli_serve_refuses_inconsistent_limits_before_loading():
    from typer.testing import CliRunner

    from llm2vec_plugins.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--model", "/nonexistent", "--max-request-tokens", "100",
                                      "--max-queue-tokens", "10"])
    assert result.exit_code == 2 and "could never be queued" in result.output


def test_a_request_is_tokenized_once_and_the_encoder_runs_the_counted_inputs(served, monkeypatch):
    from llm2vec_plugins.tokenization import TokenizedText

    seen = []
    real = served.llm2vec.encode

    def spy(inputs, *args, **kwargs):
        seen.extend(inputs)
        return real(inputs, *args, **kwargs)

    monkeypatch.setattr(served.llm2vec, "encode", spy)
    response = served.client().embeddings.create(model=NAME, input=TEXTS)
    assert all(isinstance(item, TokenizedText) for item in seen) and len(seen) == len(TEXTS)
    assert [item.input_ids.tolist() for item in seen] == [t.input_ids.tolist()
                                                          for t in served.llm2vec.input_tokenizer(TEXTS)]
    assert response.usage.prompt_tokens == sum(len(item) for item in seen)
