"""Training LLM2Vec adapters: MNTP, unsupervised SimCSE, supervised contrastive and distillation from a
teacher encoder, on transformers.Trainer.

Example:
    >>> from llm2vec_plugins.training import train
    >>> train("mntp", model="smollm2-135m-instruct", data="corpus.txt", output_dir="out/mntp", max_steps=200)
    >>> train("simcse", model="out/mntp", data="sentences.txt", output_dir="out/simcse", max_steps=300)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from llm2vec_plugins.training.config import (
    PRESETS,
    DistillConfig,
    MNTPConfig,
    SimCSEConfig,
    SupervisedConfig,
    TrainConfig,
    build_config,
)
from llm2vec_plugins.training.trainer import TrainResult


def train(stage: str, *, preset: str | None = None, config_file: str | Path | None = None, **options: Any) -> TrainResult:
    """Run one stage ("mntp", "simcse", "supervised" or "distill"); settings = defaults < preset < file < options.

    Bad data is reported before any model is loaded. Returns where the adapter is and what was measured.
    """
    config = build_config(stage, preset, config_file, **options)
    if stage == "mntp":
        from llm2vec_plugins.training.mntp import train_mntp

        return train_mntp(config)
    if stage == "simcse":
        from llm2vec_plugins.training.simcse import train_simcse

        return train_simcse(config)
    if stage == "distill":
        from llm2vec_plugins.training.distill import train_distill

        return train_distill(config)
    from llm2vec_plugins.training.supervised import train_supervised

    return train_supervised(config)


__all__ = ["PRESETS", "DistillConfig", "MNTPConfig", "SimCSEConfig", "SupervisedConfig", "TrainConfig", "TrainResult",
           "build_config", "train"]
