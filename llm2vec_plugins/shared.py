"""One loaded encoder shared by every framework adapter, and the embedding path they have in common.

The LangChain and LlamaIndex adapters inherit their options and their embedding calls from
`EncoderOptions`, which gets a `SharedEncoder` from the `get_encoder` cache. Requires pydantic,
which both frameworks install.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, PositiveInt, PrivateAttr, field_validator

from llm2vec_plugins.config import PoolingMode
from llm2vec_plugins.encoder import LLM2Vec
from llm2vec_plugins.loading import DEFAULT_ENCODER, to_dtype
from llm2vec_plugins.tokenization import Sentence

# The retrieval instruction of the LLM2Vec paper's MTEB configs (MSMARCO and the README examples).
DEFAULT_QUERY_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query:"

Embedding = list[float]


# ---------------------------------------------------------------------------------------------
# Micro-batching: concurrent async callers share one encode call
# ---------------------------------------------------------------------------------------------
@dataclass
class _Request:
    sentences: list[Sentence]
    batch_size: int
    show_progress: bool
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Run the requests of concurrent callers as ONE call of `encode`, on one background thread.

    The first request of a burst starts a worker thread that waits `window` seconds for more
    requests, encodes everything pending in one call and splits the rows back per request; it
    keeps draining while requests arrive and exits when idle. Requests are validated by the caller
    before `submit`, so one caller's bad input cannot fail another's.

    Example:
        >>> batcher = MicroBatcher(model.encode)
        >>> rows = await asyncio.wrap_future(batcher.submit(["a text"], batch_size=32))
    """

    def __init__(self, encode: Callable[..., np.ndarray], window: float = 0.01) -> None:
        self.encode = encode
        self.window = window
        self._lock = threading.Lock()
        self._pending: list[_Request] = []
        self._draining = False

    def submit(self, sentences: list[Sentence], batch_size: int, show_progress: bool = False) -> Future:
        request = _Request(list(sentences), batch_size, show_progress)
        with self._lock:
            self._pending.append(request)
            if not self._draining:
                self._draining = True
                threading.Thread(target=self._drain, name="llm2vec-microbatcher", daemon=True).start()
        return request.future

    def _drain(self) -> None:
        while True:
            time.sleep(self.window)  # let the other callers of this burst join
            with self._lock:
                requests, self._pending = self._pending, []
                if not requests:
                    self._draining = False
                    return
            self._run(requests)

    def _run(self, requests: list[_Request]) -> None:
        try:
            rows = self.encode(
                [s for r in requests for s in r.sentences],
                # The smallest batch size any caller asked for bounds memory for all of them.
                batch_size=min(r.batch_size for r in requests),
                show_progress_bar=any(r.show_progress for r in requests),
            )
        except BaseException as err:  # every caller must wake up, so no failure may escape unreported
            for r in requests:
                r.future.set_exception(err)
            return
        start = 0
        for r in requests:
            r.future.set_result(rows[start:start + len(r.sentences)])
            start += len(r.sentences)


# ---------------------------------------------------------------------------------------------
# The shared encoder and its cache
# ---------------------------------------------------------------------------------------------
class SharedEncoder:
    """A loaded `LLM2Vec` plus the embedding logic every adapter needs: instructions, batching,
    normalization, plain-list output, and micro-batching of async callers.

    Get one with `get_encoder(...)`, never by constructing it: that is what makes adapters with the
    same options share one model.

    Example:
        >>> encoder = get_encoder("smollm2-135m-llm2vec")
        >>> encoder.embed(["What is LoRA?"], instruction=DEFAULT_QUERY_INSTRUCTION)[0][:3]
    """

    def __init__(self, llm2vec: LLM2Vec, weights: LLM2Vec | None = None) -> None:
        self.llm2vec = llm2vec
        self._weights = weights  # the cached model whose weights `llm2vec` uses: keep it alive
        # Looked up at call time, so a swapped-in model (or a test's spy) serves both paths.
        self.batcher = MicroBatcher(lambda *args, **kwargs: self.llm2vec.encode(*args, **kwargs))

    @property
    def embedding_dim(self) -> int:
        return self.llm2vec.embedding_dim

    def embed(
        self,
        texts: Sequence[str],
        instruction: str | None = None,
        *,
        batch_size: int = 32,
        normalize: bool = True,
        show_progress: bool = False,
    ) -> list[Embedding]:
        """Embed texts, each under `instruction` (attended to, left out of pooling); [] for []."""
        sentences = _sentences(texts, instruction)
        if not sentences:
            return []
        rows = self.llm2vec.encode(sentences, batch_size=batch_size, show_progress_bar=show_progress)
        return _to_lists(rows, normalize)

    async def aembed(
        self,
        texts: Sequence[str],
        instruction: str | None = None,
        *,
        batch_size: int = 32,
        normalize: bool = True,
        show_progress: bool = False,
    ) -> list[Embedding]:
        """`embed` for async callers: concurrent calls are encoded together, off the event loop."""
        sentences = _sentences(texts, instruction)
        if not sentences:
            return []
        rows = await asyncio.wrap_future(self.batcher.submit(sentences, batch_size, show_progress))
        return _to_lists(rows, normalize)


def _sentences(texts: Sequence[str], instruction: str | None) -> list[Sentence]:
    """Validate adapter input and pair each text with the instruction (the backend's pair format).

    Stricter than the backend: an adapter takes plain strings only, so a nested list is an error
    here rather than an [instruction, text] pair.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("expected a list of texts, got a single str; wrap it in a list: [text]")
    if not isinstance(texts, Sequence):
        raise TypeError(f"expected a list of texts, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"text {i} must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError(f"text {i} is an empty string; an empty text has no embedding")
    return [[instruction, t] for t in texts] if instruction else list(texts)


def _to_lists(rows: np.ndarray, normalize: bool) -> list[Embedding]:
    if normalize:
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return rows.tolist()


# Weak caches: a model stays loaded exactly as long as some adapter (or caller) still uses it.
_models: weakref.WeakValueDictionary[tuple, LLM2Vec] = weakref.WeakValueDictionary()
_encoders: weakref.WeakValueDictionary[tuple, SharedEncoder] = weakref.WeakValueDictionary()
_locks: dict[tuple, threading.Lock] = {}
_locks_lock = threading.Lock()


def _lock_for(key: tuple) -> threading.Lock:
    # One lock per key: loading model A never waits for model B, and a model loads only once.
    with _locks_lock:
        return _locks.setdefault(key, threading.Lock())


def _path_key(name: str | os.PathLike | None) -> str | None:
    if name is None:
        return None
    name = os.fspath(name)
    # "./m", "m" and "/abs/m" are one model; aliases and hub ids stay as written.
    return os.path.realpath(name) if os.path.exists(name) else name


def get_encoder(
    model: str | os.PathLike = DEFAULT_ENCODER,
    peft_model: str | os.PathLike | None = None,
    *,
    pooling_mode: PoolingMode | None = None,
    max_length: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> SharedEncoder:
    """The shared encoder for these options, loaded on first request (thread-safe).

    Equal options give the same `SharedEncoder`. Options that only change pooling or truncation
    (`pooling_mode`, `max_length`) reuse the weights already loaded for the same model, device
    and dtype. `max_length` caps the whole input (instruction + text) in tokens.

    Example:
        >>> a = get_encoder("path/to/model")
        >>> a is get_encoder("path/to/model")
        True
    """
    weights_key = (_path_key(model), _path_key(peft_model), device, str(to_dtype(dtype) or "torch.float32"))
    key = (*weights_key, pooling_mode, max_length)
    with _lock_for(key):
        encoder = _encoders.get(key)
        if encoder is None:
            base = _load(weights_key, model, peft_model, device, dtype)
            encoder = SharedEncoder(_with_settings(base, pooling_mode, max_length), weights=base)
            _encoders[key] = encoder
    return encoder


def _load(key: tuple, model, peft_model, device, dtype) -> LLM2Vec:
    with _lock_for(key):
        llm2vec = _models.get(key)
        if llm2vec is None:
            llm2vec = LLM2Vec.from_pretrained(model, peft_model, device=device, dtype=dtype)
            _models[key] = llm2vec
    return llm2vec


def _with_settings(base: LLM2Vec, pooling_mode: PoolingMode | None, max_length: int | None) -> LLM2Vec:
    changes = {}
    if pooling_mode is not None:
        changes["pooling_mode"] = pooling_mode
    if max_length is not None:
        changes["max_length"] = changes["doc_max_length"] = max_length
    return base.with_settings(**changes) if changes else base  # same weights and template, other settings


# ---------------------------------------------------------------------------------------------
# The options both adapters expose (one definition, documented once)
# ---------------------------------------------------------------------------------------------
class EncoderOptions(BaseModel):
    """Options shared by the LangChain and LlamaIndex adapters, and their lazy shared encoder.

    A pydantic mixin: an adapter inherits it next to its framework's base class, so both adapters
    accept the same options, reject unknown ones, and delegate all work here.
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, protected_namespaces=())

    model: str = DEFAULT_ENCODER
    """Base model (str or path): an alias (default: the bundled `smollm2-135m-llm2vec` encoder,
    offline), a local folder, a `.gguf` file or a Hugging Face hub id."""
    peft_model: str | None = None
    """Optional LoRA adapter (folder or hub id) applied on top of `model`, e.g. an LLM2Vec SimCSE one."""
    query_instruction: str | None = DEFAULT_QUERY_INSTRUCTION
    """Instruction for queries; the encoder attends to it but does not pool it (LLM2Vec style).
    None embeds queries as plain text."""
    document_instruction: str | None = None
    """Instruction for documents; None (default, as in the LLM2Vec paper) embeds documents as plain text."""
    pooling_mode: PoolingMode | None = None
    """How token states become one vector; None uses the model's llm2vec_config.json (else "mean")."""
    max_length: PositiveInt | None = None
    """Longest input in tokens (instruction + text), longer ones are truncated with a warning;
    None uses the model's llm2vec_config.json (else 512, texts cut at 400)."""
    normalize: bool = True
    """L2-normalize embeddings, so dot product equals cosine similarity."""
    device: str | None = None
    """Torch device ("cpu", "cuda", "cuda:1", "mps"); None: CUDA when available (batches spread over
    every visible GPU), else the CPU."""
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    """Weights dtype; None is float32. bfloat16 halves memory on hardware that supports it."""

    _encoder: SharedEncoder | None = PrivateAttr(default=None)

    @field_validator("model", "peft_model", mode="before")
    @classmethod
    def _path_to_str(cls, value):
        # Paths are welcome, but stored as str so that the frameworks can serialize the adapter.
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @property
    def encoder(self) -> SharedEncoder:
        """The shared encoder for these options; loading happens on first use, not at construction."""
        if self._encoder is None:
            self._encoder = get_encoder(
                self.model, self.peft_model, pooling_mode=self.pooling_mode, max_length=self.max_length,
                device=self.device, dtype=self.dtype,
            )
        return self._encoder

    def _instruction(self, kind: Literal["query", "document"]) -> str | None:
        return self.query_instruction if kind == "query" else self.document_instruction

    def _embed(self, texts: Sequence[str], kind: Literal["query", "document"], batch_size: int,
               show_progress: bool = False) -> list[Embedding]:
        if isinstance(texts, (list, tuple)) and not texts:
            return []  # nothing to embed: do not load a model for it
        return self.encoder.embed(texts, self._instruction(kind), batch_size=batch_size,
                                  normalize=self.normalize, show_progress=show_progress)

    async def _aembed(self, texts: Sequence[str], kind: Literal["query", "document"], batch_size: int,
                      show_progress: bool = False) -> list[Embedding]:
        if isinstance(texts, (list, tuple)) and not texts:
            return []
        # Loading can take seconds: keep it off the event loop.
        encoder = self._encoder or await asyncio.to_thread(lambda: self.encoder)
        return await encoder.aembed(texts, self._instruction(kind), batch_size=batch_size,
                                    normalize=self.normalize, show_progress=show_progress)
