"""Distillation from a teacher encoder (Reimers & Gurevych 2020; DistilCSE, arXiv 2112.05638): on
unlabelled texts, the student's in-batch cosine similarities are trained to match the teacher's, so the
teacher may have any dimension (a sentence-transformers model, or a big LLM2Vec encoder distilled into a
small pruned one). The teacher's embeddings are computed once and cached (see `teacher.py`).

Batches are built around the teacher's neighbourhoods: seeds, each with its nearest neighbours among a
window of unused texts, so that every batch holds close pairs to grade as well as unrelated ones (random
batches of a broad corpus hold almost only unrelated pairs, whose similarities say little).
"""
from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler

from llm2vec_plugins.encoder import LLM2Vec
from llm2vec_plugins.loading import check_model
from llm2vec_plugins.training.config import PRUNE_CHOICES, DistillConfig, build_config
from llm2vec_plugins.training.contrastive import tokenize_for_training
from llm2vec_plugins.training.data import print_report, read_texts
from llm2vec_plugins.training.losses import principal_map, rotate_into, similarity_distill_loss
from llm2vec_plugins.training.teacher import load_teacher, teacher_embeddings
from llm2vec_plugins.training.trainer import EncoderTrainer, TrainResult, fit, load_for_training, prune_by_initial_loss


class NeighbourBatchSampler(Sampler[list[int]]):
    """Per-process batches of indices; each global batch (`batch_size * num_processes` rows) is made of
    seeds plus each seed's `neighbours` nearest unused texts by teacher cosine, searched in a window
    of the next `window` unused texts of the epoch's shuffled order. Deterministic given the seed and
    epoch; every text is used at most once per epoch; `neighbours=0` gives plain shuffled batches.

    Example:
        >>> sampler = NeighbourBatchSampler(teacher_vectors, batch_size=64, neighbours=3)
    """

    def __init__(self, vectors: np.ndarray, batch_size: int, neighbours: int = 3, seed: int = 0,
                 num_processes: int = 1, window: int = 4096) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.batch_size, self.neighbours, self.seed = batch_size, neighbours, seed
        self.num_processes, self.window, self.epoch = num_processes, window, 0
        if len(self) == 0:
            raise ValueError(f"{len(vectors)} texts make no batch of {batch_size} x {num_processes} processes")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.vectors) // (self.batch_size * self.num_processes) * self.num_processes

    def _global_batches(self) -> Iterator[list[int]]:
        size = self.batch_size * self.num_processes
        order = np.random.default_rng(self.seed + self.epoch).permutation(len(self.vectors))
        if self.neighbours == 0:
            yield from (order[i:i + size].tolist() for i in range(0, len(order) - size + 1, size))
            return
        used = np.zeros(len(order), dtype=bool)
        cursor = 0  # order[:cursor] are all used
        for _ in range(len(self) // self.num_processes):
            batch: list[int] = []
            while len(batch) < size:
                while used[order[cursor]]:
                    cursor += 1
                seed = order[cursor]
                used[seed] = True
                batch.append(int(seed))
                candidates = order[cursor:cursor + self.window]
                candidates = candidates[~used[candidates]]
                take = min(self.neighbours, size - len(batch), len(candidates))
                if take:
                    scores = self.vectors[candidates] @ self.vectors[seed]
                    nearest = candidates[np.argpartition(-scores, take - 1)[:take]]
                    used[nearest] = True
                    batch += nearest.tolist()
            yield batch

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._global_batches():
            yield from (batch[i:i + self.batch_size] for i in range(0, len(batch), self.batch_size))


@dataclass
class DistillCollator:
    """(index, text) rows -> the student's tokenized texts (some with an instruction) + the teacher's rows.

    Which texts get an instruction, and which one, depends only on the seed and the text's index, so a
    resumed run sees the same inputs."""

    encoder: LLM2Vec
    teacher: np.ndarray
    instructions: tuple[str, ...] = ()
    probability: float = 0.0
    seed: int = 0

    def _student_input(self, index: int, text: str):
        if self.instructions and self.probability > 0:
            rng = random.Random(self.seed * 1_000_003 + index)
            if rng.random() < self.probability:
                return [rng.choice(self.instructions), text]
        return text

    def __call__(self, rows: list[tuple[int, str]]) -> dict:
        features = tokenize_for_training(self.encoder, [self._student_input(i, t) for i, t in rows])
        return {"features": features, "teacher": torch.from_numpy(self.teacher[[i for i, _ in rows]])}


class DistillTrainer(EncoderTrainer):
    """EncoderTrainer with the similarity-matching loss and neighbourhood batches."""

    def __init__(self, *args, distill_loss: str = "mse", scale: float = 20.0, neighbours: int = 3, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.distill_loss, self.scale, self.neighbours = distill_loss, scale, neighbours

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        embeddings = self.embed(model, inputs["features"])
        loss = similarity_distill_loss(embeddings, inputs["teacher"], self.distill_loss, self.scale)
        return (loss, {"embeddings": embeddings}) if return_outputs else loss

    def train_batch_sampler(self) -> Sampler[list[int]]:
        return NeighbourBatchSampler(self.data_collator.teacher, self._train_batch_size, self.neighbours,
                                     self.args.seed, num_processes=self.accelerator.num_processes)


ROTATION_SAMPLE = 2048  # texts the Procrustes map is fitted on: several per student dimension


def rotate_teacher(encoder: LLM2Vec, texts: list[str], vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """The teacher's vectors carried into the student's space by the rotation that best fits the student
    as it is now (`rotate_into`, on a seeded sample of the texts), so "align" asks the least change of it;
    a teacher wider than the student is first projected onto its principal directions (`principal_map`).
    Called before any training step and before a checkpoint is loaded, it gives the same map on resume."""
    sample = np.random.default_rng(seed).permutation(len(texts))[:ROTATION_SAMPLE]
    student = encoder.encode([texts[i] for i in sample], batch_size=64, convert_to_tensor=True)
    teacher = torch.from_numpy(vectors).float()
    if teacher.shape[1] > student.shape[1]:  # e.g. a 768-d teacher for a 576-d student, or a 7B LLM2Vec one
        basis, kept = principal_map(teacher, student.shape[1])
        print(f"[llm2vec train] 'align': the {teacher.shape[1]}-dimensional teacher projected onto its "
              f"{student.shape[1]} principal directions ({kept:.1%} of its squared cosine-norm kept)", file=sys.stderr)
        teacher = torch.nn.functional.normalize(teacher @ basis, dim=-1)  # unit rows: the batches' neighbours
    rotation = rotate_into(teacher[sample], student.float())
    return (teacher @ rotation).numpy()


def train_distill(config: DistillConfig | None = None, **options) -> TrainResult:
    """Distil a teacher encoder into a LoRA adapter on `model` (e.g. a pruned MNTP / SimCSE stage).

    Example:
        >>> train_distill(model="out/simcse", data="corpus.txt", teacher="all-minilm-l6-v2",
        ...               output_dir="out/distill", num_layers="16", max_steps=2000)
    """
    config = config or build_config("distill", **options)
    texts, report = read_texts(config.data, config.text_column, config.max_examples)
    print_report(report)
    check_model(config.model)  # a wrong student path fails now, not after minutes of teacher work
    teacher = load_teacher(config.teacher)
    cache = config.teacher_cache or f"{config.output_dir}/teacher"
    vectors = teacher_embeddings(teacher, texts, cache, config.teacher_batch_size, progress=config.progress)
    del teacher  # its embeddings are all the student needs
    parts = load_for_training(config, attention_dropout=config.attention_dropout)
    encoder = parts.encoder(config)
    instructions = tuple(i.strip() for i in (config.instructions or "").split("|") if i.strip())
    collator = DistillCollator(encoder, vectors, instructions, config.instruction_probability, config.seed)
    rows = list(enumerate(texts))
    if config.num_layers in PRUNE_CHOICES:
        # The depth is chosen on the dimension-free in-batch loss: "align"'s rotation depends on the depth.
        mode = "mse" if config.distill_loss == "align" else config.distill_loss
        first = next(iter(NeighbourBatchSampler(vectors, config.batch_size, config.neighbours, config.seed)))
        batch = collator([rows[i] for i in first])
        prune_by_initial_loss(parts, config, batch["features"], lambda e: similarity_distill_loss(
            e, batch["teacher"], mode, config.scale, gather=False))
    if config.distill_loss == "align":
        collator.teacher = rotate_teacher(encoder, texts, vectors, config.seed)
    return fit(DistillTrainer, config, encoder, parts, rows, collator, distill_loss=config.distill_loss,
               scale=config.scale, neighbours=config.neighbours)
