"""Layer pruning: keep the first N decoder layers (Thennal et al. 2024, "Large Language Models Are
Overparameterized Text Encoders", arXiv 2410.14578).

Dropping the last layers before contrastive training costs little quality and cuts training and
inference time in proportion. A pruned model is an ordinary model whose config says N layers: it
saves and loads like any other, and transformers, peft and the reference read it unchanged.

L3Prune picks N from the untrained model's loss: embed a batch with every layer's output (through the
final norm, as a model pruned there would), compute the training objective on each, and take the layer
of lowest loss (the "large" variant) or of lowest loss within the first half of the model ("small").

Example:
    >>> model = prune_layers(model, 16)                  # in place; model.config.num_hidden_layers == 16
    >>> losses = layer_losses(encoder, features, loss_fn)  # loss of each depth 1..L
    >>> choose_num_layers(losses, "small")
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

from llm2vec_plugins.pooling import pool

Variant = Literal["large", "small"]


def _text_config(config):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def num_layers(config) -> int:
    """The decoder depth a config describes."""
    return int(_text_config(config).num_hidden_layers)


def prune_config(config, keep: int) -> None:
    """Make `config` describe only its first `keep` layers (per-layer lists such as `layer_types` too)."""
    text = _text_config(config)
    total = int(text.num_hidden_layers)
    if not isinstance(keep, int) or isinstance(keep, bool) or not 1 <= keep <= total:
        raise ValueError(f"num_layers must be an integer from 1 to {total} (the model's depth), got {keep!r}")
    text.num_hidden_layers = keep
    for name in ("layer_types", "sliding_window_pattern_list"):
        value = getattr(text, name, None)
        if isinstance(value, list) and len(value) == total:
            setattr(text, name, value[:keep])


def _decoder(model: nn.Module) -> nn.Module:
    """The module holding the decoder's `layers` and final `norm`, under any wrapper (peft, *ForCausalLM)."""
    for module in model.modules():
        if isinstance(getattr(module, "layers", None), nn.ModuleList) and hasattr(module, "norm"):
            return module
    raise ValueError(f"{type(model).__name__} has no decoder")


def prune_layers(model: nn.Module, keep: int) -> nn.Module:
    """Keep the first `keep` decoder layers of `model`, in place, and record it in its config.

    Example:
        >>> prune_layers(AutoModel.from_pretrained(name), 16).config.num_hidden_layers
        16
    """
    decoder = _decoder(model)
    prune_config(decoder.config, keep)
    outer = getattr(model, "config", decoder.config)
    if outer is not decoder.config and num_layers(outer) > keep:  # e.g. a *ForCausalLM holding its own copy
        prune_config(outer, keep)
    del decoder.layers[keep:]
    return model


@torch.no_grad()
def layer_embeddings(encoder, features: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Pooled embeddings of `features` at every depth 1..L: each layer's output, through the model's
    final norm (what a model pruned after that layer returns), pooled as `encoder` pools."""
    decoder = _decoder(encoder.model)
    attention_mask = features["attention_mask"].to(encoder.device)
    outputs: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: outputs.append(out[0] if isinstance(out, tuple) else out))
             for layer in decoder.layers]
    try:
        encoder.model(input_ids=features["input_ids"].to(encoder.device), attention_mask=attention_mask,
                      use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    embed_mask = features.get("embed_mask", attention_mask).to(encoder.device)
    return [pool(decoder.norm(hidden), embed_mask, attention_mask, encoder.pooling_mode) for hidden in outputs]


def layer_losses(encoder, features: dict[str, torch.Tensor],
                 loss_fn: Callable[[torch.Tensor], torch.Tensor]) -> list[float]:
    """`loss_fn(embeddings)` for the embeddings of every depth 1..L (L3Prune's initial loss per layer).

    Example:
        >>> feats = encoder.tokenize(queries + positives)
        >>> layer_losses(encoder, feats, lambda e: contrastive_loss(e[:n], e[n:]))
    """
    return [float(loss_fn(embeddings)) for embeddings in layer_embeddings(encoder, features)]


def choose_num_layers(losses: Sequence[float], variant: Variant = "large") -> int:
    """How many layers to keep, from the loss at each depth 1..L: the depth of lowest loss ("large"),
    or of lowest loss among the first half of the layers ("small").

    Example:
        >>> choose_num_layers([3.0, 2.0, 2.5, 1.5, 1.8, 1.9], "small"), choose_num_layers([3.0, 2.0, 2.5, 1.5, 1.8, 1.9])
        (2, 4)
    """
    if not losses:
        raise ValueError("no layer losses to choose from")
    if variant not in ("large", "small"):
        raise ValueError(f"variant must be 'large' or 'small', got {variant!r}")
    window = list(losses) if variant == "large" else list(losses)[:max(1, len(losses) // 2)]
    return min(range(len(window)), key=window.__getitem__) + 1
