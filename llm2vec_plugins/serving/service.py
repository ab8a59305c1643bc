"""The embedding service behind the HTTP routes: settings, request -> sentences -> tokens (once: the
counted inputs are what the encoder runs) -> one batched encode call -> OpenAI response, with the
per-request limits. No HTTP in here."""
from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pydantic import NonNegativeFloat, PositiveInt, SecretStr, model_validator

from llm2vec_plugins.serving.batcher import DynamicBatcher, QueueFull, ShuttingDown, encoder_thread
from llm2vec_plugins.serving.metrics import ServerMetrics
from llm2vec_plugins.serving.schema import EmbeddingRequest, to_sentences
from llm2vec_plugins.shared import EncoderOptions, SharedEncoder
from llm2vec_plugins.tokenization import TokenizedText

QUERY_SUFFIX = ":query"


class ApiError(Exception):
    """A request the server refuses, with its HTTP status and OpenAI error fields."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}


class ServeSettings(EncoderOptions):
    """Everything `llm2vec serve` takes: the shared encoder's options (model, instructions, pooling,
    device, ...: see `EncoderOptions`) plus the server's names, batching and limits.

    Example:
        >>> settings = ServeSettings(model="path/to/model", api_key="secret", max_batch_tokens=8192)
        >>> app = create_app(EmbeddingService.from_settings(settings))
    """

    served_model_name: str | None = None
    """The model id clients send and GET /v1/models lists (plus `NAME:query`, which embeds under the
    query instruction); None: the adapter's (else the model's) folder name, or the hub id / alias as given."""
    api_key: SecretStr | None = None
    """When set, every /v1 request needs `Authorization: Bearer <api_key>`; /health and /metrics stay open."""
    batch_size: PositiveInt = 32
    """Most texts per forward pass inside one encode call."""
    max_batch_tokens: PositiveInt = 16384
    """Token budget of one encode call: waiting requests are taken together until it is reached."""
    batch_wait_ms: NonNegativeFloat = 0.0
    """How long a free encoder waits for more requests before a call that is under the token budget;
    0 encodes at once (larger calls pay off where one call is slow, e.g. on CPUs)."""
    max_queue_tokens: PositiveInt = 262144
    """Tokens allowed to wait for the encoder; beyond that requests get 429 (bounded memory)."""
    max_items: PositiveInt = 2048
    """Most inputs in one request (OpenAI's limit too)."""
    max_request_tokens: PositiveInt = 65536
    """Most tokens in one request, counted as the encoder reads them (after truncation)."""
    max_body_bytes: PositiveInt = 16 * 1024 * 1024
    """Largest request body; larger ones get 413 before they are read."""

    @model_validator(mode="after")
    def _request_fits_queue(self):
        if self.max_request_tokens > self.max_queue_tokens:
            raise ValueError(f"max_request_tokens={self.max_request_tokens} exceeds max_queue_tokens="
                             f"{self.max_queue_tokens}: such a request could never be queued")
        return self

    @property
    def model_name(self) -> str:
        if self.served_model_name:
            return self.served_model_name
        source = self.peft_model or self.model
        return Path(source).resolve().name if os.path.exists(source) else source


class EmbeddingService:
    """Turns OpenAI embedding requests into rows of ONE shared encoder, batched across requests.

    Instructions follow the adapters: `[instruction, text]` items keep theirs; otherwise the
    request's `instruction`, else `input_type` (or the `NAME:query` model id) picks the settings'
    `query_instruction` / `document_instruction` (default: document). Tokens are counted on a
    tokenizer copy of its own thread (fast tokenizers must not be shared across threads), so the
    limits hold before anything is queued.

    Example:
        >>> service = EmbeddingService.from_settings(ServeSettings(model="path/to/model"))
        >>> body = await service.embed(EmbeddingRequest(input=["a text"]))
    """

    def __init__(self, encoder: SharedEncoder, settings: ServeSettings, metrics: ServerMetrics | None = None,
                 encoder_executor: ThreadPoolExecutor | None = None) -> None:
        self.encoder = encoder
        self.settings = settings
        self.metrics = metrics or ServerMetrics()
        self.name = settings.model_name
        self.dim = encoder.embedding_dim
        # Requests are tokenized once, here: the counted inputs are what the encoder runs.
        self._input_tokenizer = dataclasses.replace(encoder.llm2vec.input_tokenizer,
                                                    tokenizer=copy.deepcopy(encoder.llm2vec.tokenizer))
        self._tokenize_thread = ThreadPoolExecutor(1, thread_name_prefix="llm2vec-serve-tokenize")
        self.batcher = DynamicBatcher(
            self._encode, max_batch_tokens=settings.max_batch_tokens, max_queue_tokens=settings.max_queue_tokens,
            max_wait=settings.batch_wait_ms / 1000, executor=encoder_executor,
            on_batch=self.metrics.observe_batch, on_queue=self.metrics.observe_queue,
        )

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> EmbeddingService:
        """Load (or reuse) the shared encoder for these settings and serve it; the model loads on the
        thread that will run it (see `encoder_thread`)."""
        executor = encoder_thread()
        return cls(executor.submit(lambda: settings.encoder).result(), settings, encoder_executor=executor)

    @property
    def model_ids(self) -> list[str]:
        return [self.name, self.name + QUERY_SUFFIX]

    @property
    def closing(self) -> bool:
        return self.batcher.closing

    def _encode(self, inputs: list[TokenizedText]) -> np.ndarray:
        # Looked up at call time, as SharedEncoder does: a test's spy on encoder.llm2vec.encode sees the calls.
        return self.encoder.llm2vec.encode(inputs, batch_size=self.settings.batch_size,
                                           normalize_embeddings=self.settings.normalize)

    def instruction_for(self, request: EmbeddingRequest) -> tuple[str, str | None]:
        """(the model id to answer with, the instruction for the request's plain texts)."""
        name = request.model or self.name
        if name not in self.model_ids:
            raise ApiError(404, f"model {name!r} is not served here; GET /v1/models lists {self.model_ids}",
                           code="model_not_found", param="model")
        if request.instruction is not None:
            if request.input_type is not None:
                raise ApiError(400, "give either instruction or input_type, not both", param="instruction")
            return name, request.instruction
        kind = request.input_type or ("query" if name.endswith(QUERY_SUFFIX) else "document")
        return name, self.settings.query_instruction if kind == "query" else self.settings.document_instruction

    async def embed(self, request: EmbeddingRequest) -> bytes:
        """The JSON body of the OpenAI embeddings response; raises `ApiError` for what it refuses."""
        if request.dimensions is not None and request.dimensions != self.dim:
            raise ApiError(400, f"dimensions={request.dimensions} is not supported: this model gives "
                                f"{self.dim}-dimensional embeddings and is not trained to be truncated "
                                f"(omit dimensions, or pass {self.dim})", param="dimensions")
        name, instruction = self.instruction_for(request)
        sentences = to_sentences(request, instruction)
        if len(sentences) > self.settings.max_items:
            self.metrics.rejected.labels("too_many_items").inc()
            raise ApiError(400, f"input has {len(sentences)} items, more than this server's limit of "
                                f"{self.settings.max_items}; split it into several requests", param="input")
        loop = asyncio.get_running_loop()
        inputs = await loop.run_in_executor(self._tokenize_thread, self._input_tokenizer, sentences)
        tokens = sum(len(item) for item in inputs)
        if tokens > self.settings.max_request_tokens:
            self.metrics.rejected.labels("too_many_tokens").inc()
            raise ApiError(400, f"input has {tokens} tokens, more than this server's limit of "
                                f"{self.settings.max_request_tokens} per request; split it into several requests",
                           param="input")
        try:
            rows = await self.batcher.submit(inputs, tokens)
        except QueueFull as err:
            self.metrics.rejected.labels("queue_full").inc()
            raise ApiError(429, f"server overloaded: {err}", type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": "1"}) from err
        except ShuttingDown as err:
            self.metrics.rejected.labels("shutting_down").inc()
            raise ApiError(503, str(err), type="server_error", code="shutting_down") from err
        return embedding_response(rows, request.encoding_format, name, tokens)

    async def close(self) -> None:
        """Finish the queued requests, then stop the worker threads (graceful shutdown)."""
        await self.batcher.close()
        self._tokenize_thread.shutdown(wait=True)


def embedding_response(rows: np.ndarray, encoding_format: str, model: str, tokens: int) -> bytes:
    """OpenAI's embeddings response as JSON bytes (built directly: a generic encoder is slow on floats)."""
    rows = np.ascontiguousarray(rows, dtype="<f4")
    if encoding_format == "base64":
        vectors = [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]
    else:
        vectors = rows.tolist()
    return json.dumps({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }, separators=(",", ":")).encode()
