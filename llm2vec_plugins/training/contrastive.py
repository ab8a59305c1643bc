"""The contrastive stages' Trainer (SimCSE and supervised): embed groups of texts, InfoNCE over them.

A batch is a list of tokenized groups: [queries, positives] or [queries, positives, hard negatives].
All groups go through the encoder in one forward pass (one DDP call per step). With a gradient-cache
chunk size, embeddings are first computed without autograd, the loss's gradient w.r.t. them is taken,
and then each chunk is re-embedded with autograd and back-propagated: a large batch in small memory.
Under torch.distributed the loss is that of the global batch (losses.contrastive_loss gathers every
process's embeddings with their gradient), with and without the gradient cache.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from llm2vec_plugins.training.losses import contrastive_loss
from llm2vec_plugins.training.trainer import EncoderTrainer


def tokenize_for_training(encoder, sentences: Sequence) -> dict[str, torch.Tensor]:
    """`encoder.tokenize`, minus its truncation warning: cutting training texts at max_length is intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*were truncated")
        return encoder.tokenize(sentences)


def concat_features(groups: list[dict[str, torch.Tensor]], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Stack tokenized groups into one batch, right-padding each to the longest."""
    length = max(g["input_ids"].shape[1] for g in groups)
    out = {}
    for key in groups[0]:
        fill = pad_id if key == "input_ids" else 0
        out[key] = torch.cat([nn.functional.pad(g[key], (0, length - g[key].shape[1]), value=fill) for g in groups])
    return out


def grouped_contrastive_loss(embeddings: torch.Tensor, sizes: list[int], scale: float,
                             gather: bool = True) -> torch.Tensor:
    """The contrastive loss of embeddings stacked as groups [queries, positives, hard negatives...]."""
    parts = torch.split(embeddings, sizes)
    negatives = torch.cat(parts[2:]) if len(parts) > 2 else None
    return contrastive_loss(parts[0], parts[1], negatives, scale=scale, gather=gather)


def _rows(features: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    return {k: v[start:stop] for k, v in features.items()}


class ContrastiveTrainer(EncoderTrainer):
    """EncoderTrainer with the in-batch (+ hard negative) contrastive loss, optionally gradient-cached."""

    def __init__(self, *args, scale: float = 20.0, grad_cache_chunk_size: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scale = scale
        self.grad_cache_chunk_size = grad_cache_chunk_size

    def _loss_from_embeddings(self, embeddings: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        return grouped_contrastive_loss(embeddings, sizes, self.scale)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        groups = inputs["groups"]
        embeddings = self.embed(model, concat_features(groups, self.parts.tokenizer.pad_token_id))
        loss = self._loss_from_embeddings(embeddings, [g["input_ids"].shape[0] for g in groups])
        return (loss, {"embeddings": embeddings}) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not self.grad_cache_chunk_size:
            return super().training_step(model, inputs, num_items_in_batch)
        model.train()
        inputs = self._prepare_inputs(inputs)
        groups = inputs["groups"]
        features = concat_features(groups, self.parts.tokenizer.pad_token_id)
        total, chunk = features["input_ids"].shape[0], self.grad_cache_chunk_size
        bounds = [(i, min(i + chunk, total)) for i in range(0, total, chunk)]
        # Pass 1: embeddings without autograd, remembering each chunk's RNG state so that pass 2
        # draws the same dropout masks.
        states, pieces = [], []
        with torch.no_grad():
            for start, stop in bounds:
                states.append(_rng_state())
                pieces.append(self.embed(model, _rows(features, start, stop)))
        embeddings = torch.cat(pieces).detach().requires_grad_()
        with self.compute_loss_context_manager():
            loss = self._loss_from_embeddings(embeddings, [g["input_ids"].shape[0] for g in groups])
        loss = loss / self.current_gradient_accumulation_steps
        # Under torch.distributed this backward runs the gather's collective: embeddings.grad becomes the
        # sum over processes of their loss's gradient, which DDP's average in pass 2 brings back to one.
        loss.backward()
        # Pass 2: re-embed each chunk with autograd and push the cached gradient through it; gradients
        # are synchronised across processes only on the last chunk.
        for index, ((start, stop), state) in enumerate(zip(bounds, states)):
            last = index == len(bounds) - 1
            sync = contextlib.nullcontext() if last else self.accelerator.no_sync(model)
            with sync, _restored_rng(state):
                piece = self.embed(model, _rows(features, start, stop))
                piece.backward(embeddings.grad[start:stop])
        return loss.detach()


def _rng_state():
    return torch.get_rng_state(), (torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


@contextlib.contextmanager
def _restored_rng(state):
    cpu, cuda = state
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda is not None else []):
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        yield
