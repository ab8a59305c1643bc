"""The one training loop for all stages: `transformers.Trainer` plus what an encoder adapter needs.

Checkpoints, resume, gradient accumulation, mixed precision, logging and torchrun / accelerate
multi-process runs come from Trainer. This module adds: loading the decoder bidirectional with LoRA,
saving the adapter as an encoder folder (and resuming from one), a progress bar showing loss and
throughput, STS-B dev evaluation during training, and a summary of time and peak memory.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import get_last_checkpoint

from llm2vec_plugins.attention import set_bidirectional
from llm2vec_plugins.config import LLM2VecConfig
from llm2vec_plugins.encoder import LLM2Vec
from llm2vec_plugins.loading import load_base_model
from llm2vec_plugins.pruning import choose_num_layers, layer_losses, prune_layers
from llm2vec_plugins.templates import template_for
from llm2vec_plugins.training.config import TrainConfig, to_dict
from llm2vec_plugins.training.lora import (
    apply_lora,
    load_adapter_weights,
    portable_base_name,
    save_adapter,
    set_attention_dropout,
)

SUMMARY = "train_summary.json"


@dataclass
class TrainedModel:
    """Parts of a model being trained: the LoRA-wrapped decoder, its tokenizer, and the full causal LM
    (for MNTP's LM head; None for the contrastive stages)."""

    peft_model: nn.Module
    tokenizer: object
    causal_lm: nn.Module | None = None
    template: tuple[str, str] | None = None  # the chat turn inference applies: training must see it too
    pruned: bool = False  # the decoder is cut below its base's depth: adapters must record that depth

    def encoder(self, config: TrainConfig) -> LLM2Vec:
        """An LLM2Vec view of the decoder being trained (shares its weights), tokenizing exactly as
        the trained encoder will at inference (same chat template)."""
        return LLM2Vec(self.peft_model, self.tokenizer, pooling_mode=config.pooling_mode,
                       max_length=config.max_length, doc_max_length=config.max_length, template=self.template)


def load_for_training(config: TrainConfig, *, with_lm_head: bool = False, attention_dropout: float = 0.0) -> TrainedModel:
    """Load the base model in float32, make it bidirectional, and add LoRA to its decoder.

    Example:
        >>> parts = load_for_training(build_config("simcse", model="smollm2-135m-instruct", data="x.txt", output_dir="o"))
    """
    model_class = None
    if with_lm_head:
        from transformers import AutoModelForCausalLM

        model_class = AutoModelForCausalLM
    # Each process loads onto its own GPU (torchrun sets LOCAL_RANK), never all onto the first one.
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    fixed = int(config.num_layers) if config.num_layers and str(config.num_layers).isdigit() else None
    model, tokenizer, resolved = load_base_model(config.model, model_class=model_class, dtype=torch.float32,
                                                 device=device, num_layers=fixed)
    set_bidirectional(model)
    set_attention_dropout(model, attention_dropout)
    model.config.use_cache = False
    decoder = model.get_decoder() if with_lm_head else model
    if config.gradient_checkpointing:
        decoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if with_lm_head:
        model.get_output_embeddings().requires_grad_(False)
    torch.manual_seed(config.seed)  # LoRA's A matrices come from the global RNG: same settings, same adapter
    peft_model = apply_lora(decoder, config.lora_r, config.lora_alpha, config.lora_dropout, config.target_modules,
                            config.trainable_layers)
    return TrainedModel(peft_model, tokenizer, model if with_lm_head else None, template_for(resolved.sources),
                        pruned=fixed is not None or resolved.num_layers is not None)


def prune_by_initial_loss(parts: TrainedModel, config: TrainConfig, features: dict,
                          loss_fn: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """L3Prune: the stage's loss on one batch for the embeddings of every depth, then keep the layers
    up to the chosen one (`config.num_layers` l3prune-large / l3prune-small). Returns the depth kept.
    Runs before training starts, so the optimizer only ever sees the layers kept."""
    encoder = parts.encoder(config)
    was_training = parts.peft_model.training
    parts.peft_model.eval()
    try:
        losses = layer_losses(encoder, features, loss_fn)
    finally:
        parts.peft_model.train(was_training)
    keep = choose_num_layers(losses, config.num_layers.removeprefix("l3prune-"))
    print(f"[llm2vec train] L3Prune initial loss per depth: {', '.join(f'{l:.4f}' for l in losses)}; "
          f"{config.num_layers} keeps {keep} of {len(losses)} layers", file=sys.stderr)
    prune_layers(parts.peft_model, keep)
    parts.pruned = True
    return keep


def training_arguments(config: TrainConfig) -> TrainingArguments:
    """Map our settings onto transformers' TrainingArguments."""
    cuda = torch.cuda.is_available()
    bf16 = config.bf16 if config.bf16 is not None else bool(cuda and torch.cuda.is_bf16_supported())
    return TrainingArguments(
        output_dir=config.output_dir,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler,
        seed=config.seed,
        bf16=bf16,
        use_cpu=not cuda,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to=[],
        remove_unused_columns=False,  # the collators read raw texts, not model-forward columns
        dataloader_num_workers=config.dataloader_workers,
        disable_tqdm=not config.progress,
        ddp_find_unused_parameters=False,
    )


def cpu_bf16_speedup(rows: int = 1024, repeats: int = 20) -> float:
    """How many times faster this CPU multiplies bfloat16 matrices than float32 ones, measured now.

    The CPU flags do not tell: two AMD EPYCs, both with avx512_bf16, ran SmolLM2-sized matmuls 0.56x
    and 4.4x as fast in bfloat16 (a distillation step 4.4 -> 2.3 s on the second), so `--bf16` on a
    CPU is decided by measuring. Takes about a second.

    Example:
        >>> cpu_bf16_speedup() > 0
        True
    """
    def seconds(dtype: torch.dtype) -> float:
        a, b = torch.randn(rows, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
        for _ in range(3):  # warm-up: oneDNN picks and caches its kernel on the first calls
            a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        return time.perf_counter() - start
    return seconds(torch.float32) / seconds(torch.bfloat16)


class EncoderTrainer(Trainer):
    """Trainer whose checkpoints are encoder adapter folders (adapter + tokenizer + llm2vec_config.json)."""

    def __init__(self, *args, parts: TrainedModel, settings: LLM2VecConfig, pack: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.parts = parts
        self.settings = settings
        self.pack = pack

    def embed(self, model: nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The pooled embeddings of a tokenized batch, with autograd: padded, or packed (`config.pack`)."""
        return model(features, pack=self.pack)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if not self.args.should_save:
            return
        save_adapter(self.parts.peft_model, output_dir or self.args.output_dir,
                     tokenizer=self.parts.tokenizer, settings=self.settings, with_config=self.parts.pruned)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        load_adapter_weights(self.parts.peft_model, resume_from_checkpoint)

    def train_batch_sampler(self) -> Sampler[list[int]] | None:
        """Stages that build their own batches (one source per batch, teacher neighbourhoods) return
        their batch sampler; None keeps Trainer's shuffled batches."""
        return None

    def get_train_dataloader(self) -> DataLoader:
        sampler = self.train_batch_sampler()
        if sampler is None:
            return super().get_train_dataloader()
        loader = DataLoader(self.train_dataset, batch_sampler=sampler, collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers)
        return self.accelerator.prepare(loader)


class LossProgressCallback(ProgressCallback):
    """The progress bar, with the latest loss, learning rate and samples per second as its postfix."""

    def __init__(self, samples_per_step: int) -> None:
        super().__init__()
        self.samples_per_step = samples_per_step
        self._last = (0, time.perf_counter())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        step, then = self._last
        now = time.perf_counter()
        postfix = {k: f"{logs[k]:.4g}" for k in ("loss", "learning_rate", "eval_stsb_spearman") if k in logs}
        if state.global_step > step:
            postfix["samples/s"] = f"{(state.global_step - step) * self.samples_per_step / (now - then):.1f}"
        self._last = (state.global_step, now)
        self.training_bar.set_postfix(postfix)
        self.training_bar.write(json.dumps({"step": state.global_step, **logs}))


def read_sts_pairs(path: str | os.PathLike, max_pairs: int | None = None) -> tuple[list[str], list[str], list[float]]:
    """STS-B CSV (no header: sentence1,sentence2,score) -> (sentences1, sentences2, scores)."""
    import csv

    first, second, scores = [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if len(row) != 3:
                continue
            try:
                score = float(row[2])
            except ValueError:  # a header row
                continue
            first.append(row[0])
            second.append(row[1])
            scores.append(score)
            if max_pairs is not None and len(scores) >= max_pairs:
                break
    if not scores:
        raise ValueError(f"{path} holds no sentence1,sentence2,score rows")
    return first, second, scores


def sts_spearman(encoder: LLM2Vec, first: list[str], second: list[str], scores: list[float]) -> float:
    """Spearman x100 between cosine similarity of the two sentences' embeddings and the gold scores."""
    from scipy.stats import spearmanr

    a = encoder.encode(first, batch_size=64, normalize_embeddings=True)
    b = encoder.encode(second, batch_size=64, normalize_embeddings=True)
    return float(spearmanr((a * b).sum(axis=1), scores).statistic * 100)


class STSEvalCallback(TrainerCallback):
    """Spearman on STS-B dev (from a local CSV) every `every` steps and at the end, logged as eval_stsb_spearman."""

    def __init__(self, encoder: LLM2Vec, path: str, every: int, max_pairs: int | None) -> None:
        self.encoder, self.every = encoder, every
        self.pairs = read_sts_pairs(path, max_pairs)
        self.trainer: Trainer | None = None
        self._done_step = -1

    def _evaluate(self, state) -> None:
        if not state.is_world_process_zero or self._done_step == state.global_step:
            return
        self._done_step = state.global_step
        score = sts_spearman(self.encoder, *self.pairs)
        state.log_history.append({"step": state.global_step, "eval_stsb_spearman": score})
        print(f"[llm2vec train] step {state.global_step}: STS-B dev Spearman {score:.2f}", file=sys.stderr)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every and state.global_step % self.every == 0:
            self._evaluate(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._evaluate(state)


@dataclass
class TrainResult:
    """Where the adapter went, and what the run measured."""

    output_dir: Path
    global_step: int
    final_loss: float | None
    train_seconds: float
    peak_rss_mb: float
    log_history: list


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _packing(config: TrainConfig, model: nn.Module) -> bool:
    """Whether the stage packs its batches: packing is exact (`LLM2Vec.forward`) and saves the padding's
    compute, so None packs wherever the model allows it. MNTP's loss is per token, not pooled: never."""
    allowed = isinstance(model, LLM2Vec) and model.can_pack(config.max_length)
    if config.pack and not allowed:
        why = ("MNTP predicts tokens of padded rows" if not isinstance(model, LLM2Vec) else
               f"{model.model.config.model_type!r} with attention {model.model.config._attn_implementation!r} "
               "cannot pack texts (see LLM2Vec.can_pack)")
        raise ValueError(f"pack=True, but {why}; pass pack=None or False")
    return allowed if config.pack is None else config.pack


def fit(trainer_class: type[EncoderTrainer], config: TrainConfig, model: nn.Module, parts: TrainedModel,
        dataset, collator, **trainer_kwargs) -> TrainResult:
    """Run the Trainer, then write the final adapter (in `config.save_dtype`) and a summary to output_dir."""
    args = training_arguments(config)
    # The saved encoder settings are for inference: training's max_length is a truncation choice for
    # speed, not a limit the encoder should impose on its users.
    settings = LLM2VecConfig(pooling_mode=config.pooling_mode)
    pack = _packing(config, model)
    trainer = trainer_class(model=model, args=args, train_dataset=dataset, data_collator=collator,
                            parts=parts, settings=settings, pack=pack, **trainer_kwargs)
    if config.progress:
        trainer.remove_callback(ProgressCallback)
        samples = config.batch_size * config.gradient_accumulation_steps * args.world_size
        trainer.add_callback(LossProgressCallback(samples))
    if config.eval_sts:
        trainer.add_callback(STSEvalCallback(parts.encoder(config), config.eval_sts, config.eval_steps,
                                             config.eval_max_pairs))
    resume = config.resume
    if resume == "latest":
        resume = get_last_checkpoint(config.output_dir) if os.path.isdir(config.output_dir) else None
        if resume is None:
            print(f"[llm2vec train] no checkpoint in {config.output_dir}; starting from step 0", file=sys.stderr)
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    output_dir = Path(config.output_dir)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = TrainResult(output_dir, trainer.state.global_step, losses[-1] if losses else output.training_loss,
                         seconds, _peak_rss_mb(), trainer.state.log_history)
    if trainer.args.should_save:
        save_adapter(parts.peft_model, output_dir, tokenizer=parts.tokenizer, settings=settings,
                     base_model=portable_base_name(config.model), dtype=config.save_dtype,
                     training_config=to_dict(config), with_config=parts.pruned)
        summary = {"global_step": result.global_step, "final_loss": result.final_loss,
                   "train_seconds": round(seconds, 1), "peak_rss_mb": round(result.peak_rss_mb, 1),
                   "threads": torch.get_num_threads(), "log_history": result.log_history}
        (output_dir / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return result
