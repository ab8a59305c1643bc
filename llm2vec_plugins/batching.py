"""Length-sorted batching under a token budget, so padding (and wasted compute) stays near zero."""
from __future__ import annotations

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
            longest = int(lengths[order[start]])
            size = self.batch_size
            if self.max_batch_tokens is not None:
                size = max(1, min(size, self.max_batch_tokens // max(longest, 1)))
            yield order[start : start + size]
            start += size


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
