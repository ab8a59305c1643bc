"""Pooling: token hidden states -> one vector per text, driven by masks so left and right padding agree."""
from __future__ import annotations

import torch

from llm2vec_plugins.config import POOLING_MODES, PoolingMode


def pool(
    hidden: torch.Tensor,
    embed_mask: torch.Tensor,
    attention_mask: torch.Tensor,
    mode: PoolingMode,
) -> torch.Tensor:
    """Pool `hidden` (batch, length, dim) into (batch, dim), in float32.

    `embed_mask` marks the tokens that belong to the text (instruction and template tokens are 0 when
    they are to be skipped); `attention_mask` marks every real token. Positions are taken from the
    masks, never from token ids, because pad and EOS often share an id.

    - mean: average over embed_mask tokens.
    - weighted_mean: weights 1..n over the embed_mask tokens in order (later tokens count more).
    - eos_token / last_token: the last real token (the caller appends EOS for eos_token).
    - bos_token: the first real token (the caller prepends BOS when the tokenizer does not).

    Example:
        >>> pool(h, batch["embed_mask"], batch["attention_mask"], "mean").shape
        torch.Size([2, 576])
    """
    weights = pooling_weights(embed_mask, attention_mask, mode)
    return torch.einsum("bl,bld->bd", weights, hidden.float())


def pooling_weights(embed_mask: torch.Tensor, attention_mask: torch.Tensor, mode: PoolingMode) -> torch.Tensor:
    """Each token's weight in its text's vector (batch, length), float32, rows summing to 1 (0 for a
    text with nothing to pool): `pool` is the weighted sum, and packed batches place the same weights
    by token, so the two ways of batching pool by one rule.

    Example:
        >>> pooling_weights(torch.tensor([[0, 1, 1]]), torch.tensor([[1, 1, 1]]), "mean")
        tensor([[0.0000, 0.5000, 0.5000]])
    """
    if mode not in POOLING_MODES:
        raise ValueError(f"unknown pooling mode {mode!r}; choose one of {', '.join(POOLING_MODES)}")
    if mode in ("mean", "weighted_mean"):
        weights = embed_mask.float()
        if mode == "weighted_mean":
            weights = torch.cumsum(weights, dim=1) * weights
        return weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-9)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    real = attention_mask.bool()
    if mode in ("eos_token", "last_token"):
        index = torch.where(real, positions, -1).amax(dim=1)
    else:
        index = torch.where(real, positions, attention_mask.shape[1]).amin(dim=1)
    return (positions[None, :] == index[:, None]).float()
