"""Unsupervised SimCSE: every text is embedded twice with independent dropout; its second view is the
positive, the other texts of the batch (from every process) are the negatives."""
from __future__ import annotations

from dataclasses import dataclass

from llm2vec_plugins.encoder import LLM2Vec
from llm2vec_plugins.training.config import SimCSEConfig, build_config
from llm2vec_plugins.training.contrastive import ContrastiveTrainer, tokenize_for_training
from llm2vec_plugins.training.data import print_report, read_texts
from llm2vec_plugins.training.trainer import TrainResult, fit, load_for_training


@dataclass
class SimCSECollator:
    """Texts -> two identical tokenized groups (the dropout in the forward pass makes them differ)."""

    encoder: LLM2Vec

    def __call__(self, texts: list[str]) -> dict:
        features = tokenize_for_training(self.encoder, texts)
        return {"groups": [features, features]}


def train_simcse(config: SimCSEConfig | None = None, **options) -> TrainResult:
    """Train a SimCSE LoRA adapter (usually on top of an MNTP adapter, passed as `model`).

    Example:
        >>> train_simcse(model="out/mntp", data="sentences.txt", output_dir="out/simcse",
        ...              max_steps=300, batch_size=32, max_length=64)
    """
    config = config or build_config("simcse", **options)
    texts, report = read_texts(config.data, config.text_column, config.max_examples)
    print_report(report)
    parts = load_for_training(config, attention_dropout=config.attention_dropout)
    encoder = parts.encoder(config)
    return fit(ContrastiveTrainer, config, encoder, parts, texts, SimCSECollator(encoder), scale=config.scale)
