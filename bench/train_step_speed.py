"""Training step time with LoRA on every layer against LoRA on the top layers only (`--trainable-layers`),
and packed batches against padded ones (training's `--pack`).

    .venv/bin/python bench/train_step_speed.py [--layers 16] [--batch 64] [--length 48] [--steps 4] [--top 8,4]

One fwd+bwd+AdamW step of the distillation loss on STS-B test sentences (their tokens only: no score is
read), four per text, truncated to `--length` tokens, on SmolLM2-135M-Instruct cut to `--layers`, LoRA r=32 on
all linear projections, fp32, this machine's threads. Each setting is warmed up with one step, then the
best of `--steps` is kept. Prints each setting's seconds per step and its speed-up over "all layers".
Then, with LoRA on every layer (as the default encoder's recipe trains): texts of one to four sentences
(lengths vary, as a corpus's do), padded to the longest against packed side by side, and the speed-up of packing;
last, the packed step under bfloat16 autocast (training's `--bf16`) against float32, beside this CPU's bfloat16
matmul speed-up (`cpu_bf16_speedup`, which the default encoder's recipe reads to choose `--bf16`).
"""
from __future__ import annotations

import argparse
import time

import torch

from _common import stsb_sentences
from llm2vec_plugins.training.config import build_config
from llm2vec_plugins.training.contrastive import tokenize_for_training
from llm2vec_plugins.training.losses import similarity_distill_loss
from llm2vec_plugins.training.trainer import cpu_bf16_speedup, load_for_training


def step_seconds(args, trainable: int | None, texts: list[str], teacher: torch.Tensor, pack: bool = False,
                 full: bool = True, bf16: bool = False) -> float:
    config = build_config("distill", model=args.model, data="unused", output_dir="unused",
                          teacher="unused", num_layers=str(args.layers), lora_r=32, lora_alpha=64,
                          lora_dropout=0.0, max_length=args.length, trainable_layers=trainable)
    parts = load_for_training(config)
    encoder = parts.encoder(config)
    features = tokenize_for_training(encoder, texts)
    if full and features["input_ids"].shape[1] < args.length:
        raise SystemExit(f"texts fill only {features['input_ids'].shape[1]} of --length {args.length} tokens")
    params = [p for p in parts.peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    best = float("inf")
    for i in range(args.steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as Trainer's bf16=True does on a CPU
            loss = similarity_distill_loss(encoder(features, pack=pack), teacher)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:  # the first step is warm-up
            best = min(best, time.perf_counter() - start)
    print(f"trainable layers {trainable or 'all':>4}{', packed' if pack else ''}{', bf16' if bf16 else ''}: "
          f"{sum(p.numel() for p in params) / 1e6:.2f}M trainable, {best:.2f} s/step", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=48)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--top", default="8,4")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    sentences = stsb_sentences()  # four sentences per text, so that every row fills --length
    texts = [" ".join(sentences[4 * i:4 * i + 4]) for i in range(args.batch)]
    teacher = torch.nn.functional.normalize(torch.randn(len(texts), 384, generator=torch.Generator().manual_seed(0)), dim=-1)
    print(f"{args.layers} layers, batch {len(texts)} x {args.length} tokens, {torch.get_num_threads()} threads")
    base = step_seconds(args, None, texts, teacher)
    tops = [int(t) for t in args.top.split(",")]
    for top in tops:
        print(f"  top {top}: {base / step_seconds(args, top, texts, teacher):.2f}x faster per step")
    varied = [" ".join(sentences[4 * i:4 * i + 1 + i % 4]) for i in range(args.batch)]
    print("texts of 1-4 sentences, all layers:")
    padded = step_seconds(args, None, varied, teacher, full=False)
    packed = step_seconds(args, None, varied, teacher, pack=True, full=False)
    print(f"  packed: {padded / packed:.2f}x faster per step than padded")
    bf16 = step_seconds(args, None, varied, teacher, pack=True, full=False, bf16=True)
    print(f"  packed, bf16 autocast: {packed / bf16:.2f}x faster per step than float32 "
          f"(bfloat16 matmul on this CPU: {cpu_bf16_speedup():.2f}x)")


if __name__ == "__main__":
    main()
