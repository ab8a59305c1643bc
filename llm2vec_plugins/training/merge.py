"""Merge trained LoRA adapters into the base weights: one full model folder, no peft needed to load it."""
from __future__ import annotations

import os
from pathlib import Path

from llm2vec_plugins.encoder import LLM2Vec


def merge_to_full_model(model: str | os.PathLike, adapter: str | os.PathLike | None, output_dir: str | os.PathLike,
                        dtype: str = "float32") -> Path:
    """Load `model` (+ `adapter`), merge every adapter into the weights, save to `output_dir`.

    `model` may itself be an adapter folder (e.g. the MNTP stage): its base is loaded and it is merged.

    Example:
        >>> merge_to_full_model("out/mntp", "out/simcse", "out/merged")
        >>> LLM2Vec.from_pretrained("out/merged")  # no peft, same embeddings
    """
    encoder = LLM2Vec.from_pretrained(model, adapter, merge_peft=True, dtype=dtype)
    return encoder.save(output_dir, merge_before_save=True)
