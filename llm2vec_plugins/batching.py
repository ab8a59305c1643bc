"""Length-sorted batching under a token budget, so padding (and wasted compute) stays near zero; and
packing, where short texts share a row (each attending only to itself) instead of being padded."""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TokenBudgetBatcher:
    """Group inputs into batches of at most `batch_size` items and `max_batch_tokens` padded tokens.

    Inputs are visited longest first (a too-large batch fails at once, not after an hour), and each
    batch holds inputs of similar length so padding is small.

    Example:
        >>> batcher = TokenBudgetBatcher(batch_size=32, max_batch_tokens=8192)
        >>> [len(b) for b in batcher.batches([5, 300, 7, 6])]
        [4]
    """

    batch_size: int = 32
    max_batch_tokens: int | None = 16384

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {self.max_batch_tokens}")

    def batches(self, lengths: Sequence[int]) -> Iterator[np.ndarray]:
        """Yield arrays of input indices; every index appears exactly once."""
        order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
        start = 0
        while start < len(order):
            size = self._capacity(int(lengths[order[start]]))
            yield order[start : start + size]
            start += size

    def _capacity(self, longest: int) -> int:
        """Items (or rows) a pass whose longest input has `longest` tokens may hold."""
        if self.max_batch_tokens is None:
            return self.batch_size
        return max(1, min(self.batch_size, self.max_batch_tokens // max(longest, 1)))

    def packed_batches(self, lengths: Sequence[int]) -> Iterator[list[list[int]]]:
        """Yield forward passes as rows of input indices: each row holds texts whose lengths sum to at
        most the pass's width (its longest text), at most `batch_size` rows and `max_batch_tokens`
        tokens (rows x width) per pass: never more memory than a padded batch of `batch_size` texts.

        Rows are filled longest first, topped up with the shortest texts left; every index appears
        exactly once.

        Example:
            >>> list(TokenBudgetBatcher(batch_size=2).packed_batches([10, 3, 8, 2]))
            [[[0], [2, 3]], [[1]]]
        """
        order = deque(np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable").tolist())
        while order:
            width = max(int(lengths[order[0]]), 1)
            rows = self._capacity(width)
            forward = []
            while order and len(forward) < rows:
                row = [order.popleft()]
                used = int(lengths[row[0]])
                while order and used + int(lengths[order[-1]]) <= width:
                    row.append(order.pop())
                    used += int(lengths[row[-1]])
                forward.append(row)
            yield forward


def pad_batch(
    sequences: Sequence[np.ndarray], masks: Sequence[np.ndarray], pad_id: int
) -> dict[str, torch.Tensor]:
    """Right-pad token ids and pooling masks into tensors (positions then start at 0 for every row)."""
    width = max(len(s) for s in sequences)
    input_ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), width), dtype=np.int64)
    embed_mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, (ids, mask) in enumerate(zip(sequences, masks)):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
        embed_mask[row, : len(ids)] = mask
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention_mask),
        "embed_mask": torch.from_numpy(embed_mask),
    }


def pack_batch(
    sequences: Sequence[np.ndarray], weights: Sequence[np.ndarray], row_sizes: Sequence[int], pad_id: int
) -> dict[str, torch.Tensor]:
    """Lay texts out in shared rows, in order: the first `row_sizes[0]` of `sequences` fill row 0, and so on.

    Returns `input_ids`, `position_ids` (counting from 0 in each text, as if it were alone),
    `segments` (the index in `sequences` at each position, -1 for padding: a text attends to its own
    positions only) and `weights` (each token's pooling weight, from `weights`, one array per text).
    """
    bounds = np.cumsum([0, *row_sizes])
    width = max(sum(len(s) for s in sequences[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))
    shape = (len(row_sizes), width)
    input_ids = np.full(shape, pad_id, dtype=np.int64)
    position_ids = np.zeros(shape, dtype=np.int64)
    segments = np.full(shape, -1, dtype=np.int64)
    token_weights = np.zeros(shape, dtype=np.float32)
    for r, (first, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        start = 0
        for i in range(first, stop):
            end = start + len(sequences[i])
            input_ids[r, start:end] = sequences[i]
            position_ids[r, start:end] = np.arange(end - start)
            segments[r, start:end] = i
            token_weights[r, start:end] = weights[i]
            start = end
    return {
        "input_ids": torch.from_numpy(input_ids),
        "position_ids": torch.from_numpy(position_ids),
        "segments": torch.from_numpy(segments),
        "weights": torch.from_numpy(token_weights),
    }
