"""LoRA for the trainers: wrap the decoder with a peft adapter, and save that adapter as an encoder folder.

The adapter is put on the decoder itself (AutoModel, no LM head), as the reference does, so the saved
folder loads with `LLM2Vec.from_pretrained(base, adapter)` and with the reference implementation.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from llm2vec_plugins.config import LLM2VecConfig

TRAINING_CONFIG = "llm2vec_training.json"


def apply_lora(decoder: nn.Module, r: int = 16, alpha: int = 32, dropout: float = 0.05,
               target_modules: str | list[str] = "all-linear", trainable_layers: int | None = None):
    """Freeze `decoder` and add trainable LoRA matrices (default: every attention and MLP projection).

    `trainable_layers=N` puts them on the top N decoder layers only. Nothing below those requires a
    gradient, so autograd stops there: the backward pass skips the frozen lower layers entirely.

    Example:
        >>> peft_model = apply_lora(AutoModel.from_pretrained(name), r=16, alpha=32)
        >>> peft_model.print_trainable_parameters()
    """
    from peft import LoraConfig, get_peft_model

    if isinstance(target_modules, str) and target_modules != "all-linear":
        target_modules = [m.strip() for m in target_modules.split(",") if m.strip()]
    if trainable_layers is not None:
        target_modules = _modules_of_top_layers(decoder, trainable_layers, target_modules)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, bias="none")
    return get_peft_model(decoder, config)


def _modules_of_top_layers(decoder: nn.Module, count: int, target_modules: str | list[str]) -> list[str]:
    """Full names of the target Linear modules inside the top `count` decoder layers. (peft's own
    `layers_to_transform` needs a prefix before "layers." that a bare decoder's module names lack.)"""
    depth = decoder.config.num_hidden_layers
    if count > depth:
        raise ValueError(f"trainable_layers={count} but the decoder has {depth} layers")
    top = {str(i) for i in range(depth - count, depth)}
    names = []
    for name, module in decoder.named_modules():
        parts = name.split(".")
        if not isinstance(module, nn.Linear) or "layers" not in parts[:-1]:
            continue
        index = parts[parts.index("layers") + 1]
        if index in top and (target_modules == "all-linear" or parts[-1] in target_modules):
            names.append(name)
    if not names:
        raise ValueError(f"no {target_modules} Linear module in the top {count} layers of this decoder")
    return names


def set_attention_dropout(model: nn.Module, p: float) -> None:
    """Set attention dropout on every attention layer (they copy it from the config at construction)."""
    for config in {id(c): c for c in (model.config, getattr(model.config, "get_text_config", lambda: None)())
                   if c is not None}.values():
        config.attention_dropout = p
    for module in model.modules():
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p


def portable_base_name(model_arg: str) -> str:
    """What to record as the adapter's base model: aliases and hub ids as given, folders as absolute paths."""
    from llm2vec_plugins.loading import ALIASES

    if model_arg in ALIASES or not Path(model_arg).expanduser().exists():
        return model_arg
    return str(Path(model_arg).expanduser().resolve())


def save_adapter(peft_model, output_dir: str | os.PathLike, *, tokenizer=None, settings: LLM2VecConfig | None = None,
                 base_model: str | None = None, dtype: str = "float32", training_config: dict | None = None,
                 with_config: bool = False) -> Path:
    """Write a peft adapter folder (+ tokenizer, llm2vec_config.json, training settings).

    `with_config` also writes the decoder's config.json, as the published `-mntp` repos hold their
    base's: for a pruned decoder it records the depth the adapter was trained at, to which the base
    is cut when the folder loads.

    `dtype="bfloat16"` stores the LoRA weights in half the space; they are upcast when loaded into a
    float32 model.
    """
    from safetensors.torch import load_file, save_file

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(output_dir, safe_serialization=True)
    weights = output_dir / "adapter_model.safetensors"
    if dtype == "bfloat16" and weights.is_file():
        tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(weights).items()}
        save_file(tensors, weights, metadata={"format": "pt"})
    if base_model is not None:
        config_path = output_dir / "adapter_config.json"
        adapter_config = json.loads(config_path.read_text())
        adapter_config["base_model_name_or_path"] = base_model
        config_path.write_text(json.dumps(adapter_config, indent=2) + "\n")
    if with_config:
        config = peft_model.get_base_model().config.to_dict()
        config.pop("is_causal", None)  # our runtime switch, not part of the checkpoint
        (output_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(output_dir)
    if settings is not None:
        settings.save(output_dir)
    if training_config is not None:
        (output_dir / TRAINING_CONFIG).write_text(json.dumps(training_config, indent=2) + "\n")
    return output_dir


def load_adapter_weights(peft_model, checkpoint_dir: str | os.PathLike) -> None:
    """Load a checkpoint's adapter weights into an already-wrapped peft model (used on resume)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = Path(checkpoint_dir) / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{checkpoint_dir} holds no adapter_model.safetensors to resume from")
    result = set_peft_model_state_dict(peft_model, load_file(weights))
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise RuntimeError(f"checkpoint {checkpoint_dir} does not match this model: unexpected keys {unexpected[:3]}")
