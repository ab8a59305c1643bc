"""Bidirectional attention for any transformers decoder, and a check that it really is bidirectional.

transformers >= 5 builds attention masks through `masking_utils`, which returns a bidirectional
(padding-only) mask when `config.is_causal` is False, and forwards `is_causal` to every attention
kernel. Setting that one flag (plus the per-module attribute some kernels read) therefore covers every
architecture that uses the shared masking code, with no copied model classes. Because a kernel that
silently stays causal is the classic failure (batch size 1, no padding, mask None), `check_bidirectional`
measures it instead of trusting it, and `LLM2Vec.from_pretrained` runs it on every load.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


def _configs(model: nn.Module) -> list:
    """The config of the model and of its text sub-model (multimodal wrappers keep a text_config)."""
    config = model.config
    found = [config]
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else None
    if text_config is not None and text_config is not config:
        found.append(text_config)
    return found


def set_bidirectional(model: nn.Module, bidirectional: bool = True) -> nn.Module:
    """Make every attention layer of `model` bidirectional (or causal again), in place.

    Example:
        >>> model = AutoModel.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
        >>> set_bidirectional(model)
        >>> assert check_bidirectional(model).is_bidirectional
    """
    for config in _configs(model):
        config.is_causal = not bidirectional
    for module in model.modules():
        if hasattr(module, "is_causal") and isinstance(module.is_causal, bool):
            module.is_causal = not bidirectional
    return model


@dataclass
class BidirectionalReport:
    """Outcome of `check_bidirectional`: per case, how much the first token moved when the last one changed."""

    changes: dict[str, float] = field(default_factory=dict)
    tolerance: float = 1e-6

    @property
    def is_bidirectional(self) -> bool:
        return bool(self.changes) and all(v > self.tolerance for v in self.changes.values())

    @property
    def is_causal(self) -> bool:
        return bool(self.changes) and all(v == 0.0 for v in self.changes.values())

    def __str__(self) -> str:
        cases = ", ".join(f"{k}: {v:.3g}" for k, v in self.changes.items())
        kind = "bidirectional" if self.is_bidirectional else "causal" if self.is_causal else "mixed"
        return f"{kind} ({cases})"


def _last_hidden(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, output_hidden_states=True)
    hidden = getattr(out, "last_hidden_state", None)
    return hidden if hidden is not None else out.hidden_states[-1]


@torch.inference_mode()
def check_bidirectional(
    model: nn.Module,
    *,
    seq_len: int = 8,
    batch_sizes: tuple[int, ...] = (1, 3),
    padded: tuple[bool, ...] = (False, True),
    tolerance: float = 1e-6,
    seed: int = 0,
) -> BidirectionalReport:
    """Prove (or disprove) that `model` attends bidirectionally, the way it will be called.

    For each batch size and with/without right padding, the last real token of every row is replaced and
    the first token's final hidden state is compared: under causal attention it cannot move at all, under
    bidirectional attention it must. Accepts an HF model or anything with a `.model` HF model (LLM2Vec).

    Example:
        >>> report = check_bidirectional(LLM2Vec.from_pretrained("smollm2-135m-instruct").model)
        >>> report.is_bidirectional
        True
    """
    if not hasattr(model, "get_input_embeddings"):  # an LLM2Vec wrapper: check the HF model inside
        model = model.model
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    vocab = model.config.get_text_config().vocab_size if hasattr(model.config, "get_text_config") else model.config.vocab_size
    generator = torch.Generator().manual_seed(seed)
    # Stay clear of the low ids where tokenizers keep their special tokens.
    low = min(100, vocab // 2)
    report = BidirectionalReport(tolerance=tolerance)
    try:
        for batch in batch_sizes:
            for pad in padded:
                ids = torch.randint(low, vocab, (batch, seq_len), generator=generator)
                mask = torch.ones_like(ids)
                lengths = torch.full((batch,), seq_len)
                if pad:
                    # Row i loses i+1 tokens to padding (row 0 too, so batch size 1 is padded as well).
                    lengths = torch.tensor([max(2, seq_len - 1 - i) for i in range(batch)])
                    for i, n in enumerate(lengths.tolist()):
                        mask[i, n:] = 0
                changed = ids.clone()
                rows = torch.arange(batch)
                changed[rows, lengths - 1] = (ids[rows, lengths - 1] - low + 1) % (vocab - low) + low
                a = _last_hidden(model, ids.to(device), mask.to(device))[:, 0].float()
                b = _last_hidden(model, changed.to(device), mask.to(device))[:, 0].float()
                # The weakest row decides: one causal row is a failure.
                change = (a - b).abs().amax(dim=-1).min().item()
                report.changes[f"batch={batch},padded={pad}"] = change
    finally:
        model.train(was_training)
    return report


def verify_attention(model: nn.Module, bidirectional: bool = True) -> BidirectionalReport:
    """Raise unless `model` attends the way it was set to: bidirectional (or causal) at batch 1 and 2,
    with and without padding. Batch 1 without padding is where kernels get no mask and silently stay
    causal, so it is always among the cases.

    Example:
        >>> verify_attention(set_bidirectional(model))
    """
    report = check_bidirectional(model, batch_sizes=(1, 2), padded=(False, True))
    if bidirectional and not report.is_bidirectional:
        raise RuntimeError(
            f"attention of {model.config.model_type!r} stayed causal after enabling bidirectional "
            f"attention ({report}); this architecture does not use transformers' shared masking code"
        )
    if not bidirectional and not report.is_causal:
        raise RuntimeError(f"attention is not causal although enable_bidirectional=False ({report})")
    return report
