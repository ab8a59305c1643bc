"""Dynamic batching for the server: the requests that wait together become ONE encode call, under a
token budget, from a bounded queue that refuses work (instead of growing) when it is full."""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np


def encoder_thread() -> ThreadPoolExecutor:
    """The one thread that runs the model: load the model on it too (`.submit(load).result()`).

    Torch's CPU kernels use OpenMP, which keeps a thread team per thread that ever ran a parallel
    region; with teams of two threads holding more threads than there are cores, GNU OpenMP stops
    spin-waiting between kernels, and every forward pass got ~25% slower on a 2-core machine
    (measured: calls of 341 texts, 17 s when load and encode share a thread, 22 s when they do not).
    """
    return ThreadPoolExecutor(1, thread_name_prefix="llm2vec-serve-encode")


class QueueFull(Exception):
    """The queue holds `max_queue_tokens` already: the client should retry later (HTTP 429)."""


class ShuttingDown(Exception):
    """The batcher was closed and takes no new work (HTTP 503)."""


@dataclass
class BatchStats:
    """What one encode call held: passed to the `on_batch` hook (the server's metrics)."""

    requests: int
    inputs: int
    tokens: int
    seconds: float


@dataclass
class _Waiting:
    sentences: list[Any]
    tokens: int
    future: asyncio.Future


class DynamicBatcher:
    """Encode the inputs of concurrent requests together, one blocking `encode` call at a time.

    `encode` runs on ONE worker thread (`executor`, default: a new `encoder_thread()`), so the event
    loop keeps serving while it computes. Whenever
    that thread is free, the requests waiting in the queue are taken in arrival order until their
    tokens reach `max_batch_tokens` (a request larger than that goes alone) and encoded in one call;
    the rows go back to each request. With `max_wait` > 0 the free encoder first waits up to that many
    seconds for more requests unless the budget is already full: larger calls, at that much latency. The queue holds at most `max_queue_tokens` tokens: `submit`
    raises `QueueFull` beyond that, so memory stays bounded under any load. `close()` finishes
    everything already queued and refuses the rest (`ShuttingDown`).

    Example:
        >>> batcher = DynamicBatcher(lambda s: model.encode(s), max_batch_tokens=16384, max_queue_tokens=262144)
        >>> rows = await batcher.submit(["a text", ["Retrieve similar text:", "another"]], tokens=12)
    """

    def __init__(
        self,
        encode: Callable[[list[Any]], np.ndarray],
        *,
        max_batch_tokens: int,
        max_queue_tokens: int,
        max_wait: float = 0.0,
        executor: ThreadPoolExecutor | None = None,
        on_batch: Callable[[BatchStats], None] | None = None,
        on_queue: Callable[[int, int], None] | None = None,
    ) -> None:
        if max_batch_tokens < 1 or max_queue_tokens < 1:
            raise ValueError(f"token limits must be >= 1, got max_batch_tokens={max_batch_tokens}, "
                             f"max_queue_tokens={max_queue_tokens}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0 seconds, got {max_wait}")
        self.encode = encode
        self.max_batch_tokens = max_batch_tokens
        self.max_queue_tokens = max_queue_tokens
        self.max_wait = max_wait
        self.on_batch = on_batch
        self.on_queue = on_queue  # (waiting requests, waiting tokens), after every change
        self._waiting: deque[_Waiting] = deque()
        self._queued_tokens = 0
        # ONE thread: see `encoder_thread`.
        self._executor = executor or encoder_thread()
        # Created in the serving loop on first use (the batcher may be built before the loop runs).
        self._wakeup: asyncio.Event | None = None
        self._budget_reached: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closing = False

    @property
    def queue_depth(self) -> int:
        """Requests waiting for the encoder (the one being encoded excluded)."""
        return len(self._waiting)

    @property
    def queued_tokens(self) -> int:
        return self._queued_tokens

    @property
    def closing(self) -> bool:
        """True once `close()` was called: new requests are refused."""
        return self._closing

    async def submit(self, sentences: list[Any], tokens: int) -> np.ndarray:
        """Queue one request's inputs (already validated and tokenized; `tokens` as counted by the
        caller) and return its rows, in order."""
        if self._closing:
            raise ShuttingDown("the server is shutting down")
        if self._queued_tokens + tokens > self.max_queue_tokens:
            raise QueueFull(f"the queue is full ({self._queued_tokens} of {self.max_queue_tokens} tokens "
                            f"waiting); retry later")
        waiting = _Waiting(sentences, tokens, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        self._queued_tokens += tokens
        self._report_queue()
        self._ensure_worker()
        self._wakeup.set()
        if self._queued_tokens >= self.max_batch_tokens:
            self._budget_reached.set()
        # A cancelled caller (client gone) cancels its future; the worker then skips it.
        return await waiting.future

    async def close(self) -> None:
        """Refuse new requests, encode the queued ones, and stop the worker thread."""
        self._closing = True
        if self._worker is not None:
            self._wakeup.set()
            await self._worker
        self._executor.shutdown(wait=True)

    def _ensure_worker(self) -> None:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._worker.get_loop() is not loop:
            self._wakeup, self._budget_reached = asyncio.Event(), asyncio.Event()
            self._worker = loop.create_task(self._work(), name="llm2vec-serve-batcher")

    def _report_queue(self) -> None:
        if self.on_queue is not None:
            self.on_queue(len(self._waiting), self._queued_tokens)

    def _take_batch(self) -> list[_Waiting]:
        batch, tokens = [], 0
        while self._waiting:
            head = self._waiting[0]
            if head.future.done():  # cancelled while waiting
                self._waiting.popleft()
                self._queued_tokens -= head.tokens
                continue
            if batch and tokens + head.tokens > self.max_batch_tokens:
                break
            self._waiting.popleft()
            self._queued_tokens -= head.tokens
            batch.append(head)
            tokens += head.tokens
        self._report_queue()
        return batch

    async def _gather_more(self) -> None:
        # Let requests that are on their way join this call, up to `max_wait` or a full budget.
        self._budget_reached.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._budget_reached.wait(), self.max_wait)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.max_wait and self._queued_tokens < self.max_batch_tokens and not self._closing:
                await self._gather_more()
            batch = self._take_batch()
            if not batch:
                continue
            sentences = [s for w in batch for s in w.sentences]
            start = time.perf_counter()
            try:
                rows = await loop.run_in_executor(self._executor, self.encode, sentences)
            except Exception as err:  # this batch fails, the server goes on
                for w in batch:
                    if not w.future.done():
                        w.future.set_exception(err)
                continue
            if self.on_batch is not None:
                self.on_batch(BatchStats(len(batch), len(sentences), sum(w.tokens for w in batch),
                                         time.perf_counter() - start))
            offset = 0
            for w in batch:
                if not w.future.done():
                    w.future.set_result(rows[offset:offset + len(w.sentences)])
                offset += len(w.sentences)
