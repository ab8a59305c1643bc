"""The default encoder against full-depth SmolLM2 through the same `encode()`: the speed that layer pruning
and merged adapters buy.

    .venv/bin/python bench/default_encoder_speed.py [--limit N] [--repeats 2] [--threads 2]

Data: the unique sentences of the STS-B test set (2,552; `--limit N` takes the first N). Rows, in one
process, fp32, CPU, mean pooling, `encode()` defaults (batch 32, length-sorted token-budget batches):

(a) full      `smollm2-135m-instruct`: SmolLM2-135M-Instruct, all 30 layers, bidirectional, no adapter
(b) default   `smollm2-135m-llm2vec`: the pruned encoder, its adapters merged at load

Rows alternate, each warmed up on 32 texts first, best of `--repeats`; the load average is printed
beside each (the machine may be shared). Prints the speed-up (a) / (b) against the target (>= 1.5).
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from _common import stsb_sentences
from llm2vec_plugins import LLM2Vec

ROWS = {"full": "smollm2-135m-instruct", "default": "smollm2-135m-llm2vec"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = stsb_sentences()[:args.limit]
    encoders = {row: LLM2Vec.from_pretrained(name, device="cpu", dtype="float32") for row, name in ROWS.items()}
    best = {row: float("inf") for row in ROWS}
    for encoder in encoders.values():
        encoder.encode(texts[:32])
    for round_ in range(args.repeats):
        for row, encoder in encoders.items():
            start = time.perf_counter()
            encoder.encode(texts)
            seconds = time.perf_counter() - start
            best[row] = min(best[row], seconds)
            print(f"round {round_ + 1} {row:8s} ({encoders[row].model.config.num_hidden_layers} layers): "
                  f"{seconds:7.2f} s, {len(texts) / seconds:6.1f} sentences/s, load {os.getloadavg()[0]:.1f}")
    ratio = best["full"] / best["default"]
    print(f"\n{len(texts)} sentences, best of {args.repeats}: full {best['full']:.2f} s, default {best['default']:.2f} s; "
          f"default is {ratio:.2f}x faster (target >= 1.5)")


if __name__ == "__main__":
    main()
