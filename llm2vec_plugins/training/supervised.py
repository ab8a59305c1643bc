"""Supervised contrastive training on E5 data: the instruction goes with the query (and, for the
reference's symmetric datasets, with the documents), every other positive in the global batch and the
hard negatives are negatives, and each global batch comes from one source dataset (mixing sources in a
batch makes in-batch negatives trivially easy)."""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from torch.utils.data import Sampler

from llm2vec_plugins.encoder import LLM2Vec
from llm2vec_plugins.training.config import PRUNE_CHOICES, SupervisedConfig, build_config
from llm2vec_plugins.training.contrastive import (
    ContrastiveTrainer,
    concat_features,
    grouped_contrastive_loss,
    tokenize_for_training,
)
from llm2vec_plugins.training.data import PairExample, print_report, read_pairs
from llm2vec_plugins.training.trainer import TrainResult, fit, load_for_training, prune_by_initial_loss


class SourceBatchSampler(Sampler[list[int]]):
    """Per-process batches of indices such that each global batch (one batch of every process, at one
    step) comes from one source, as the reference's E5 loader builds them.

    Each source's indices are shuffled and cut into global batches of `batch_size * num_processes`
    (a source's incomplete last one is dropped), the global batches are shuffled, and each is yielded as
    `num_processes` consecutive batches of `batch_size`. accelerate's sharding gives process r the
    batches r, r + num_processes, ... (round robin), so at every step all processes hold pieces of the
    same global batch. Every process must build the sampler with the same sources and seed; the order
    changes with `set_epoch` (the Trainer calls it each epoch).

    Example:
        >>> list(SourceBatchSampler(["a", "a", "b", "b"], batch_size=1, num_processes=2, seed=0))
        [[2], [3], [0], [1]]
    """

    def __init__(self, sources: list[str], batch_size: int, seed: int = 0, num_processes: int = 1) -> None:
        self.batch_size, self.num_processes, self.seed, self.epoch = batch_size, num_processes, seed, 0
        groups: dict[str, list[int]] = defaultdict(list)
        for index, source in enumerate(sources):
            groups[source].append(index)
        self.groups = dict(groups)
        if len(self) == 0:
            raise ValueError(f"no source has {batch_size} x {num_processes} processes = "
                             f"{batch_size * num_processes} examples; lower batch_size "
                             f"(sizes: {', '.join(f'{k or None}={len(v)}' for k, v in self.groups.items())})")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        size = self.batch_size * self.num_processes
        global_batches = []
        for indices in self.groups.values():
            indices = indices[:]
            rng.shuffle(indices)
            global_batches += [indices[i:i + size] for i in range(0, len(indices) - size + 1, size)]
        rng.shuffle(global_batches)
        return (batch[i:i + self.batch_size] for batch in global_batches for i in range(0, size, self.batch_size))

    def __len__(self) -> int:
        size = self.batch_size * self.num_processes
        return sum(len(v) // size for v in self.groups.values()) * self.num_processes


def _paired(instruction: str, text: str) -> str | list[str]:
    return [instruction, text] if instruction else text


@dataclass
class SupervisedCollator:
    """Examples -> tokenized groups [queries, positives, hard negatives (if any)].

    Instructions are passed as `[instruction, text]` pairs, so they are attended to but not pooled.
    """

    encoder: LLM2Vec

    def __call__(self, examples: list[PairExample]) -> dict:
        queries = [_paired(e.instruction, e.query) for e in examples]
        positives = [_paired(e.document_instruction, e.positive) for e in examples]
        groups = [tokenize_for_training(self.encoder, queries), tokenize_for_training(self.encoder, positives)]
        negatives = [_paired(e.document_instruction, n) for e in examples for n in e.negatives]
        if negatives:
            groups.append(tokenize_for_training(self.encoder, negatives))
        return {"groups": groups}


class SupervisedTrainer(ContrastiveTrainer):
    """ContrastiveTrainer whose global batches (all processes together) come from one source dataset."""

    def train_batch_sampler(self) -> Sampler[list[int]]:
        return SourceBatchSampler([e.source for e in self.train_dataset], self._train_batch_size, self.args.seed,
                                  num_processes=self.accelerator.num_processes)


def train_supervised(config: SupervisedConfig | None = None, **options) -> TrainResult:
    """Train a supervised contrastive LoRA adapter on an E5 folder or JSONL rows (see `read_pairs`).

    Example:
        >>> train_supervised(model="out/mntp", data="echo-data/", output_dir="out/supervised",
        ...                  batch_size=64, grad_cache_chunk_size=16, scale=50.0)
    """
    config = config or build_config("supervised", **options)
    examples, report = read_pairs(config.data, config.num_hard_negatives, config.source_column, config.max_examples)
    print_report(report)
    parts = load_for_training(config, attention_dropout=config.attention_dropout)
    encoder = parts.encoder(config)
    collator = SupervisedCollator(encoder)
    if config.num_layers in PRUNE_CHOICES:
        first = next(iter(SourceBatchSampler([e.source for e in examples], config.batch_size, config.seed)))
        groups = collator([examples[i] for i in first])["groups"]
        sizes = [g["input_ids"].shape[0] for g in groups]
        prune_by_initial_loss(parts, config, concat_features(groups, parts.tokenizer.pad_token_id),
                              lambda e: grouped_contrastive_loss(e, sizes, config.scale, gather=False))
    return fit(SupervisedTrainer, config, encoder, parts, examples, collator,
               scale=config.scale, grad_cache_chunk_size=config.grad_cache_chunk_size)
