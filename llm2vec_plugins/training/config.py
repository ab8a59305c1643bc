"""Training settings: one dataclass per stage, presets named after the paper's configs, JSON/YAML files.

Precedence, lowest first: the stage's defaults, a preset, a config file, explicit overrides (CLI flags).
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

Stage = Literal["mntp", "simcse", "supervised", "distill"]
PRUNE_CHOICES = ("l3prune-large", "l3prune-small")
DISTILL_LOSSES = ("mse", "kl", "align")  # similarity_distill_loss's modes, kept here so the CLI checks them without torch


def _opt(default: Any, help: str) -> Any:  # noqa: A002 - "help" is the CLI's word for it
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Settings shared by the three stages (model, data, LoRA, optimisation, saving, evaluation)."""

    model: str = _opt("", "Base model: hub id, local folder, .gguf file, alias, or a previous stage's adapter folder.")
    data: str = _opt("", "Training data: .txt (one text per line), .jsonl, .csv, .parquet, a Hugging Face dataset name, "
                         "or (supervised) a folder of E5 files: allnli.jsonl, msmarco_passage.jsonl, ...")
    output_dir: str = _opt("", "Where checkpoints and the final adapter folder are written.")
    text_column: str | None = _opt(None, "Column holding the text (JSONL/CSV/Parquet/HF); default: 'text' or 'sentence'.")
    max_examples: int | None = _opt(None, "Use at most this many rows of the data (after skipping bad rows).")
    # LoRA (paper: r=16, alpha=32 on all attention and MLP projections)
    lora_r: int = _opt(16, "LoRA rank.")
    lora_alpha: int = _opt(32, "LoRA alpha.")
    lora_dropout: float = _opt(0.05, "Dropout on the LoRA branch.")
    target_modules: str = _opt("all-linear", "Comma-separated module names, or 'all-linear' (every attention and MLP projection).")
    trainable_layers: int | None = _opt(None, "LoRA on the top N decoder layers only: the layers below stay frozen "
                                              "and need no backward pass, so a step is cheaper. Default: all layers.")
    # Optimisation
    max_steps: int = _opt(1000, "Optimizer steps.")
    batch_size: int = _opt(32, "Examples per device per forward pass.")
    gradient_accumulation_steps: int = _opt(1, "Forward passes per optimizer step.")
    learning_rate: float = _opt(5e-5, "Peak learning rate.")
    warmup_steps: int = _opt(0, "Linear warm-up steps.")
    weight_decay: float = _opt(0.0, "AdamW weight decay.")
    lr_scheduler: str = _opt("linear", "transformers scheduler name (linear, cosine, constant, ...).")
    max_length: int = _opt(512, "Truncate texts to this many tokens.")
    seed: int = _opt(42, "Random seed (data order, masking, dropout).")
    bf16: bool | None = _opt(None, "bfloat16 mixed precision; default: on where the GPU supports it, off on "
                                      "CPU (where cpu_bf16_speedup() >= 2 it trains ~2x faster).")
    gradient_checkpointing: bool = _opt(False, "Recompute activations in the backward pass (less memory, ~30% slower).")
    pack: bool | None = _opt(None, "Contrastive and distillation stages: lay a batch's texts side by side in rows as "
                                   "wide as its longest, each attending only to itself, instead of padding every "
                                   "text to the longest (the same loss, the compute of the real tokens). Default: "
                                   "where the model allows it (rotary positions, sdpa or eager attention).")
    pooling_mode: str = _opt("mean", "Pooling written to llm2vec_config.json and used by contrastive stages.")
    num_layers: str | None = _opt(None, "Layer pruning: keep the first N decoder layers (an integer), or let L3Prune "
                                        "choose from the initial loss of this stage per layer: l3prune-large (the "
                                        "layer of lowest loss) or l3prune-small (lowest within the first half; "
                                        "supervised and distill stages).")
    # Saving and logging
    logging_steps: int = _opt(10, "Log loss every N steps.")
    save_steps: int = _opt(200, "Write a resumable checkpoint every N steps.")
    save_total_limit: int | None = _opt(2, "Keep at most this many checkpoints.")
    save_dtype: str = _opt("float32", "dtype of the final adapter weights: float32 or bfloat16 (half the size).")
    resume: str | None = _opt(None, "Resume: a checkpoint folder, or 'latest' for the newest one in output_dir.")
    progress: bool = _opt(True, "Show a progress bar.")
    # Evaluation during training
    eval_sts: str | None = _opt(None, "STS-B dev CSV (sentence1,sentence2,score): log Spearman x100 every eval_steps.")
    eval_steps: int = _opt(0, "Evaluate every N steps (0: only at the end, when eval_sts is set).")
    eval_max_pairs: int = _opt(500, "Evaluate on at most this many STS pairs (keeps evaluation quick).")
    dataloader_workers: int = _opt(0, "DataLoader worker processes.")


@dataclass
class MNTPConfig(TrainConfig):
    """Masked next-token prediction: mask tokens, predict token i from the hidden state at i-1."""

    mask_probability: float = _opt(0.2, "Fraction of tokens to mask (paper: 0.2 Llama family, 0.8 Mistral).")
    mask_strategy: str = _opt("bert", "'bert': 80% mask token / 10% random / 10% unchanged; 'all_mask': always the mask token.")
    mask_token: str = _opt("auto", "'auto' (tokenizer's mask token, else '_'), 'eos', or a literal token such as '_'.")


@dataclass
class SimCSEConfig(TrainConfig):
    """Unsupervised SimCSE: each text twice with independent dropout; the other texts are negatives."""

    scale: float = _opt(20.0, "Cosine similarity is multiplied by this (1 / temperature; paper: 20).")
    attention_dropout: float = _opt(0.3, "Attention dropout during training (paper: 0.3).")


@dataclass
class SupervisedConfig(TrainConfig):
    """Supervised contrastive: (instruction + query, positive, hard negatives) from E5-style JSONL."""

    scale: float = _opt(50.0, "Cosine similarity is multiplied by this (paper: 50).")
    num_hard_negatives: int = _opt(1, "Hard negatives per query (0: in-batch negatives only).")
    source_column: str = _opt("dataset", "Column naming the source dataset (an E5 folder: the file name); each "
                                         "global batch, all processes together, comes from one source.")
    grad_cache_chunk_size: int | None = _opt(None, "Gradient cache: embed in chunks of this size so a big batch fits in memory.")
    attention_dropout: float = _opt(0.0, "Attention dropout during training.")


@dataclass
class DistillConfig(TrainConfig):
    """Distillation from a teacher encoder on plain texts: the student's in-batch cosine similarities are
    trained to match the teacher's (so the two need not share a dimension)."""

    teacher: str = _opt("", "Teacher: a sentence-transformers folder (or hub id), or anything LLM2Vec.from_pretrained loads.")
    teacher_batch_size: int = _opt(64, "Texts per teacher forward pass when its embeddings are computed (once, cached).")
    teacher_cache: str | None = _opt(None, "Folder for the cached teacher embeddings (default: OUTPUT_DIR/teacher).")
    distill_loss: str = _opt("mse", "'mse': squared error between the two in-batch cosine matrices; 'kl': KL divergence "
                                    "between their row-wise softmax at temperature 1/scale; 'align': the teacher's vectors are "
                                    "rotated into the student's space (orthogonal Procrustes against the untrained student, "
                                    "all their cosines kept) and each text's student vector is trained towards its own "
                                    "(cosine); a wider teacher is first projected onto its principal directions.")
    scale: float = _opt(20.0, "For distill_loss=kl: similarities are multiplied by this before the softmax.")
    neighbours: int = _opt(3, "Each batch is built of seeds plus this many nearest neighbours of each (teacher "
                              "cosine), so that batches hold similar texts as well as unrelated ones (0: random batches).")
    instructions: str | None = _opt(None, "'|'-separated instructions; with instruction_probability a text is given one "
                                          "(attended, not pooled) while the teacher sees the plain text.")
    instruction_probability: float = _opt(0.0, "Fraction of texts given an instruction from `instructions`.")
    attention_dropout: float = _opt(0.0, "Attention dropout during training.")


CONFIG_CLASSES: dict[str, type[TrainConfig]] = {"mntp": MNTPConfig, "simcse": SimCSEConfig, "supervised": SupervisedConfig,
                                                "distill": DistillConfig}

# The paper's settings (LLM2Vec, BehnamGhader et al. 2024, and the reference train_configs), per stage.
PRESETS: dict[str, dict[str, Any]] = {
    "mntp-llama": dict(max_steps=1000, batch_size=32, learning_rate=5e-5, max_length=512, mask_probability=0.2,
                       mask_token="_", save_steps=200),
    "mntp-llama3": dict(max_steps=1000, batch_size=32, learning_rate=5e-5, max_length=512, mask_probability=0.2,
                        mask_token="_", save_steps=200),
    "mntp-sheared-llama": dict(max_steps=1000, batch_size=32, learning_rate=5e-5, max_length=512,
                               mask_probability=0.2, mask_token="_", save_steps=200),
    "mntp-mistral": dict(max_steps=1000, batch_size=32, learning_rate=5e-5, max_length=512, mask_probability=0.8,
                         mask_token="_", save_steps=200),
    "simcse-paper": dict(max_steps=1000, batch_size=128, learning_rate=3e-5, max_length=128, scale=20.0,
                         attention_dropout=0.3, save_steps=200),
    "supervised-paper": dict(max_steps=1000, batch_size=64, gradient_accumulation_steps=8, learning_rate=2e-4,
                             warmup_steps=300, max_length=512, scale=50.0, num_hard_negatives=1, save_steps=200),
}
PRESET_STAGE: dict[str, str] = {name: name.split("-", 1)[0] for name in PRESETS}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML file of settings into a dict."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise FileNotFoundError(f"cannot read config file {path}: {err}") from err
    if path.suffix in (".yaml", ".yml"):
        import yaml

        values = yaml.safe_load(text) or {}
    else:
        values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of option names to values")
    return values


def build_config(stage: Stage, preset: str | None = None, config_file: str | Path | None = None,
                 **overrides: Any) -> TrainConfig:
    """Settings for `stage`: defaults, then `preset`, then `config_file`, then `overrides` (None = not given).

    Example:
        >>> cfg = build_config("simcse", preset="simcse-paper", max_steps=200, model="smollm2-135m-instruct")
        >>> cfg.scale, cfg.max_steps
        (20.0, 200)
    """
    if stage not in CONFIG_CLASSES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(CONFIG_CLASSES)}")
    cls = CONFIG_CLASSES[stage]
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        if PRESET_STAGE[preset] != stage:
            raise ValueError(f"preset {preset!r} is for the {PRESET_STAGE[preset]} stage, not {stage}")
        values.update(PRESETS[preset])
    if config_file is not None:
        values.update(read_config_file(config_file))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {stage} option(s): {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    config = cls(**values)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    for name in ("model", "data", "output_dir"):
        if not getattr(config, name):
            raise ValueError(f"{name} is required")
    for name in ("max_steps", "batch_size", "gradient_accumulation_steps", "max_length", "lora_r"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.save_dtype not in ("float32", "bfloat16"):
        raise ValueError(f"save_dtype must be float32 or bfloat16, got {config.save_dtype!r}")
    if config.num_layers is not None and config.num_layers not in PRUNE_CHOICES and not (
            str(config.num_layers).isdigit() and int(config.num_layers) >= 1):
        raise ValueError(f"num_layers must be a positive integer or one of {', '.join(PRUNE_CHOICES)}, "
                         f"got {config.num_layers!r}")
    if config.trainable_layers is not None and config.trainable_layers < 1:
        raise ValueError(f"trainable_layers must be >= 1, got {config.trainable_layers}")
    if config.trainable_layers is not None and config.num_layers in PRUNE_CHOICES:
        # L3Prune cuts the depth after LoRA is placed, so "the top N" would name layers that get removed.
        raise ValueError(f"trainable_layers needs a fixed depth; num_layers={config.num_layers} chooses it while training")
    if config.num_layers in PRUNE_CHOICES and not isinstance(config, (SupervisedConfig, DistillConfig)):
        raise ValueError(f"num_layers={config.num_layers} chooses the depth from the initial loss of a supervised "
                         "or distill stage; give this stage an integer")
    if isinstance(config, DistillConfig):
        if not config.teacher:
            raise ValueError("teacher is required")
        if config.distill_loss not in DISTILL_LOSSES:
            raise ValueError(f"distill_loss must be one of {', '.join(DISTILL_LOSSES)}, got {config.distill_loss!r}")
        if config.neighbours < 0 or config.teacher_batch_size < 1:
            raise ValueError("neighbours must be >= 0 and teacher_batch_size >= 1")
        if not 0 <= config.instruction_probability <= 1:
            raise ValueError(f"instruction_probability must be in [0, 1], got {config.instruction_probability}")
        if config.instruction_probability > 0 and not config.instructions:
            raise ValueError("instruction_probability > 0 needs instructions")
    if isinstance(config, MNTPConfig):
        if not 0 < config.mask_probability < 1:
            raise ValueError(f"mask_probability must be in (0, 1), got {config.mask_probability}")
        if config.mask_strategy not in ("bert", "all_mask"):
            raise ValueError(f"mask_strategy must be 'bert' or 'all_mask', got {config.mask_strategy!r}")


def config_fields(stage: Stage) -> list:
    """The dataclass fields of a stage's settings (the CLI builds its options from them)."""
    return [f for f in fields(CONFIG_CLASSES[stage]) if f.default is not MISSING]


def to_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)
