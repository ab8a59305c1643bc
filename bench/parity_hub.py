"""Parity with the reference `llm2vec` 0.2.3 on McGill-NLP's published checkpoint layout, loaded BY HUB ID.

    .venv/bin/python bench/parity_hub.py [--families llama mistral gemma qwen2] [--threshold 0.99999]

Setup. tests/hub_cache.py writes, per family, tiny random models in the published repos' layout into a
temporary Hugging Face cache (read with HF_HUB_OFFLINE=1): the base repo (e.g.
meta-llama/Meta-Llama-3-8B-Instruct), McGill-NLP/LLM2Vec-<base>-mntp (adapter + the base's config.json
and tokenizer, adapter naming the base) and ...-mntp-supervised (adapter only, naming the -mntp repo).
The reference (transformers 4.44, its own venv, `_reference_worker.py` as a child process) reads a
second cache with the same repos, snapshots and refs, where every snapshot holding a config.json and
tokenizer is made 4.44-loadable by shared/tools/t444_view.py (tokenizer class, rope_theta at top level,
BPE merges as strings, model_input_names) and adapter-only snapshots are copied as they are.

Cases, per family, each on ~40 texts (plain strings and [instruction, text] pairs), mean pooling,
skip_instruction=True, float32, CPU:
- mntp: ours `LLM2Vec.from_pretrained(mntp_id)` vs the reference `LLM2Vec.from_pretrained(mntp_id)`.
- mntp+supervised: the same with `peft_model_name_or_path=supervised_id` on both sides.
- reference loads our save: ours (mntp+supervised) written by `.save(dir)`, a 4.44 view of that folder
  loaded by the reference, against ours before saving.
The 4.44 cache also gets, in every adapter_config.json, only the keys the reference's peft (< 0.13)
knows: our peft writes newer ones (alora_invocation_tokens, ...) that old peft rejects; a dropped key
holding a non-default value is an error. And peft < 0.13 asks the hub whether adapter_model.safetensors
exists even with HF_HUB_OFFLINE=1 (transformers#31700, fixed by peft#1976 in 0.13): the worker's
"offline_hub_adapters" flag answers that from the cache, as peft 0.13 does.

Every case also compares, sentence by sentence, the token ids and pooled-token masks both sides build
(the reference's own tokenization, via the worker's tokens_out), and checks that the chat template of
the base id (llm2vec_plugins.templates.TEMPLATES) is really in the reference's input ids: the
reference picks it by `model.config._name_or_path`, which for a hub-id load is the base id named by
the -mntp adapter, and for our save is the `_name_or_path` that save() writes into config.json.
A check that is not vacuous: on the reference side mntp and mntp+supervised vectors must differ.

Gemma 2: ours needs attn_implementation="eager" (soft-capped attention logits); the reference 0.2.3
has no bidirectional Gemma 2 model (its `_get_model_class` knows Mistral, Llama, Gemma and Qwen2
configs only) and raises "Gemma2Config is not supported yet with bidirectional models."; such a row is
printed as "unsupported by the reference" and not gated. Any other reference failure fails the run.

Qwen2: llm2vec 0.2.3's Qwen2BiModel is causal on transformers 4.44 (it sets is_causal=False on the
attention layers but never overrides _update_causal_mask, unlike its Llama / Mistral / Gemma models).
When our model fed the reference's own tokens matches only once made causal, the row says so ("ref
attention CAUSAL") and is gated on our model made causal, on our own tokens: the load path (weights,
adapters, template, pooled tokens) must still match exactly.

Output: a table (family, case, template in the reference's inputs, ids equal, pooled masks equal, min
and mean cosine, min cos* = diagnostic with the reference's own tokens, the reference's attention);
exit 1 when any gated min cosine is below --threshold, or an ids / masks / template check fails.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from _common import T444_TOOL, cosines, load_text  # noqa: E402

REFERENCE_PYTHONS = (Path("/work/refenv/bin/python"), Path("/work/refvenv/bin/python"))
FAMILY_NAMES = ("llama", "mistral", "gemma", "qwen2")
UNSUPPORTED = "is not supported yet with bidirectional models"
INSTRUCTIONS = ("Retrieve semantically similar text:",
                "Given a question, retrieve passages that answer the question:")
PLAIN = [
    "A man is playing a guitar on the street.",
    "The quick brown fox jumps over the lazy dog.",
    "two dogs run in a field",
    "a cat sleeps",
    "Language models can be turned into text encoders.",
    "bidirectional attention",
    "A woman is slicing an onion.",
    "The dog chases the ball in the park.",
    "what is a fox?",
    "Symbols [brackets] and {braces}.",
    "Emoji 😀 and CJK 中文",
    "Numbers 3.14 and 42",
    "quoted \"words\" here",
    "x",
    "The lazy dog sleeps all day.",
    "A man is playing a flute.",
    "Given a question, find the answer.",
    "  street music at night  ",  # the reference strips only the trailing whitespace of a plain text
    "encoders with attention",
    "The brown fox is quick.",
]
PAIRED = [
    "a man is playing a guitar",
    "two dogs run in a field",
    "a cat sleeps on the sofa",
    "what is a fox?",
    "how do language models encode text?",
    "The quick brown fox.",
    "A dog runs in the park.",
    "Emoji 😀 in a query",
    "Where is the street?",
    "models and encoders",
    "a woman is playing the piano",
    "lazy dogs",
    "What does bidirectional mean?",
    "the guitar player",
    "A man is slicing a tomato.",
    "symbols {braces} [brackets]",
    "jumps over",
    "who plays the guitar?",
    "CJK 中文字符",
    "field of dogs",
]


def texts() -> list:
    return PLAIN + [[INSTRUCTIONS[i % 2], t] for i, t in enumerate(PAIRED)]


@dataclass
class Row:
    family: str
    case: str
    status: str = "ok"  # ok | unsupported | error
    cos: np.ndarray | None = None
    cos_ref_mask: np.ndarray | None = None  # diagnostic: our weights, the reference's ids and pooled mask
    cos_causal: np.ndarray | None = None  # our model made causal, our own tokens (when the above fails)
    reference_causal: bool = False  # the reference's vectors are those of causal attention
    template: str = "-"
    ids_equal: str = "-"
    masks_equal: str = "-"
    notes: list = field(default_factory=list)


# --- the two caches -------------------------------------------------------------------------------

def build_hub_cache(cache: Path, work: Path, families) -> dict:
    from tests.hub_cache import build_published_family
    from tests.tiny_models import build_tokenizer

    tokenizer_dir = work / "tokenizer"
    build_tokenizer(tokenizer_dir)
    return {f: build_published_family(cache, f, tokenizer_dir, work / f) for f in families}


def reference_lora_fields(python: Path) -> set[str]:
    """The LoraConfig fields the reference venv's peft knows."""
    code = "import dataclasses, json, peft; print(json.dumps([f.name for f in dataclasses.fields(peft.LoraConfig)]))"
    out = subprocess.run([os.fspath(python), "-c", code], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def old_peft_adapter_config(path: Path, known: set[str]) -> None:
    """Drop the keys of adapter_config.json that the reference's older peft rejects (our peft writes
    newer ones, e.g. alora_invocation_tokens; McGill's repos were written by an older peft). Only keys
    holding our peft's default value are dropped; any other raises, since dropping it would change the adapter."""
    import dataclasses

    import peft

    defaults = {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
                for f in dataclasses.fields(peft.LoraConfig)}
    config = json.loads(path.read_text())
    unknown = sorted(k for k in config if k not in known)
    changed = [k for k in unknown if k in defaults and config[k] != defaults[k] and k != "peft_version"]
    if changed:
        raise ValueError(f"{path}: the reference's peft does not know {changed}, set to non-default values")
    path.unlink()  # it may be a copy of a cache file: write a new one
    path.write_text(json.dumps({k: v for k, v in config.items() if k in known}, indent=2))


def t444_folder(src: Path, dst: Path, tool: Path, lora_fields: set[str]) -> None:
    """`dst`: `src` with the transformers-4.44 fixes where it holds a model config + tokenizer, else a copy;
    an adapter_config.json keeps only the keys the reference's peft knows."""
    has_config, has_tokenizer = (src / "config.json").is_file(), (src / "tokenizer_config.json").is_file()
    if has_config != has_tokenizer:
        raise ValueError(f"{src}: config.json and tokenizer files must come together for t444_view.py")
    dst.mkdir(parents=True, exist_ok=True)
    if has_config:
        subprocess.run([sys.executable, os.fspath(tool), os.fspath(src), os.fspath(dst)], check=True,
                       stdout=subprocess.DEVNULL)
    for item in src.iterdir():  # adapters, llm2vec_config.json, special_tokens_map.json, ...
        target = dst / item.name
        if not os.path.lexists(target):
            (shutil.copytree if item.is_dir() else shutil.copy)(item, target)
    if (dst / "adapter_config.json").is_file():
        old_peft_adapter_config(dst / "adapter_config.json", lora_fields)


def build_t444_cache(cache: Path, cache444: Path, tool: Path, lora_fields: set[str]) -> None:
    """Same repos, refs and snapshot hashes as `cache`, every snapshot made 4.44-loadable."""
    for repo in sorted(cache.glob("models--*")):
        shutil.copytree(repo / "refs", cache444 / repo.name / "refs", dirs_exist_ok=True)
        for snapshot in (repo / "snapshots").iterdir():
            t444_folder(snapshot, cache444 / repo.name / "snapshots" / snapshot.name, tool, lora_fields)


# --- the reference --------------------------------------------------------------------------------

@dataclass
class RefResult:
    embeddings: np.ndarray | None
    tokens: list | None
    error: str | None = None


def run_reference(model: str, sentences: list, *, peft_model: str | None, hub_cache: Path, python: Path,
                  threads: int, batch_size: int) -> RefResult:
    """One reference load (+ optional adapter) and encode, in its venv, reading hub ids from `hub_cache`."""
    with tempfile.TemporaryDirectory(prefix="llm2vec-ref-hub-") as tmp:
        tmp = Path(tmp)
        # The reference's encode() turns plain strings into ["", text] only when the FIRST one is a
        # string (mixed lists fail its asserts): hand it that form for every plain string.
        pairs = [["", s] if isinstance(s, str) else list(s) for s in sentences]
        job = {"pooling_mode": "mean", "skip_instruction": True, "batch_size": batch_size,
               "sentences": pairs, "out": os.fspath(tmp / "emb.npy"),
               "tokens_out": os.fspath(tmp / "tokens.json")}
        # peft < 0.13 (the reference's pin) asks the hub about adapter files even offline: the worker
        # answers from the cache instead (peft#1976's fix, see _reference_worker.py).
        request = {"model": model, "threads": threads, "jobs": [job], "offline_hub_adapters": True}
        if peft_model is not None:
            request["peft_model"] = peft_model
        (tmp / "request.json").write_text(json.dumps(request))
        env = dict(os.environ, HF_HUB_CACHE=os.fspath(hub_cache), HF_HUB_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   TRANSFORMERS_VERBOSITY="error", PYTHONWARNINGS="ignore")
        env.pop("HF_HOME", None)
        proc = subprocess.run([os.fspath(python), os.fspath(HERE / "_reference_worker.py"),
                               os.fspath(tmp / "request.json")], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            return RefResult(None, None, proc.stderr[-4000:])
        return RefResult(np.load(job["out"]), json.loads(Path(job["tokens_out"]).read_text()))


# --- comparison -----------------------------------------------------------------------------------

def our_tokens(encoder, sentences) -> list[dict]:
    out = []
    for s in sentences:
        features = encoder.tokenize([s])
        out.append({"input_ids": features["input_ids"][0].tolist(), "pooled": features["embed_mask"][0].tolist()})
    return out


def pooled_with(encoder, tokens: list[dict]) -> np.ndarray:
    """Our model's vectors for given ids and pooled masks (one unpadded forward per sentence): with the
    reference's tokens, isolates the weights (the hub-id load) from the choice of pooled tokens."""
    import torch

    out = []
    with torch.no_grad():
        for t in tokens:
            ids = torch.tensor([t["input_ids"]], device=encoder.device)
            features = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                        "embed_mask": torch.tensor([t["pooled"]], device=encoder.device)}
            out.append(encoder.forward(features).float().cpu().numpy()[0])
    return np.stack(out)


def compare(row: Row, ours_emb, ours_tok, ref: RefResult, sentences, tokenizer, template, show: int,
            encoder) -> None:
    if ref.error is not None:
        if UNSUPPORTED in ref.error:
            row.status = "unsupported"
            row.notes.append(ref.error.strip().splitlines()[-1])
        else:
            row.status = "error"
            row.notes.append(ref.error)
        return
    row.cos = cosines(ours_emb, ref.embeddings)
    row.cos_ref_mask = cosines(pooled_with(encoder, ref.tokens), ref.embeddings)
    if row.cos_ref_mask.min() < THRESHOLD:  # not the pooled tokens: is the reference's attention causal?
        from llm2vec_plugins import set_bidirectional

        set_bidirectional(encoder.model, False)
        try:
            causal_ref_tokens = cosines(pooled_with(encoder, ref.tokens), ref.embeddings)
            row.cos_causal = cosines(pooled_with(encoder, ours_tok), ref.embeddings)
        finally:
            set_bidirectional(encoder.model, True)
        if causal_ref_tokens.min() >= THRESHOLD:
            row.reference_causal = True
            row.notes.append(
                f"the reference's attention is CAUSAL here: our model made causal, fed the reference's tokens, gives "
                f"min cosine {causal_ref_tokens.min():.7f} (on our own tokens {row.cos_causal.min():.7f}); llm2vec "
                "0.2.3's Qwen2BiModel sets is_causal=False on its attention layers but, unlike its Llama / Mistral "
                "/ Gemma models, does not override _update_causal_mask, so transformers 4.44's Qwen2Model still "
                "builds a causal mask (eager) or returns None and SDPA runs is_causal=True")
    n = len(sentences)
    ids_ok = [o["input_ids"] == r["input_ids"] for o, r in zip(ours_tok, ref.tokens)]
    masks_ok = [o["pooled"] == r["pooled"] for o, r in zip(ours_tok, ref.tokens)]
    row.ids_equal, row.masks_equal = f"{sum(ids_ok)}/{n}", f"{sum(masks_ok)}/{n}"
    if template is None:
        row.template = "none?"
        row.notes.append("no chat template known for this base id")
    else:
        prefix, suffix = template
        decoded = [tokenizer.decode(r["input_ids"]) for r in ref.tokens]
        applied = sum(d.startswith(prefix) and d.endswith(suffix) for d in decoded)
        row.template = "yes" if applied == n else f"{applied}/{n}"
        if applied != n:
            row.notes.append(f"reference input without the chat turn, e.g. {decoded[0]!r}")
    bad = [i for i in np.argsort(row.cos) if row.cos[i] < THRESHOLD or not ids_ok[i] or not masks_ok[i]]
    for i in bad[:show]:
        o, r = ours_tok[i], ref.tokens[i]
        row.notes.append(
            f"cos {row.cos[i]:.6f} for {sentences[i]!r}\n"
            f"      ours: ids {o['input_ids']}\n            pooled {o['pooled']}\n"
            f"      ref : ids {r['input_ids']}\n            pooled {r['pooled']}\n"
            f"      ours tokens {tokenizer.convert_ids_to_tokens(o['input_ids'])}\n"
            f"      ref  tokens {tokenizer.convert_ids_to_tokens(r['input_ids'])}")


def passed(row: Row) -> bool:
    if row.status == "unsupported":
        return True
    if row.status != "ok":
        return False
    n = len(row.cos)
    # Where the reference's attention is causal (its Qwen2 bug), ours made causal must match it exactly.
    cos = row.cos_causal if row.reference_causal else row.cos
    return (float(cos.min()) >= THRESHOLD and row.template == "yes"
            and row.ids_equal == f"{n}/{n}" and row.masks_equal == f"{n}/{n}")


THRESHOLD = 0.99999


def main() -> int:
    global THRESHOLD
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILY_NAMES), choices=FAMILY_NAMES)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--ref-python", type=Path,
                        default=next((p for p in REFERENCE_PYTHONS if p.is_file()), REFERENCE_PYTHONS[0]))
    parser.add_argument("--t444-tool", type=Path, default=T444_TOOL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--show", type=int, default=3, help="offending sentences to dump per failing row")
    parser.add_argument("--keep", action="store_true", help="keep the temporary caches and saved folders")
    args = parser.parse_args()
    THRESHOLD = args.threshold
    if not args.ref_python.is_file():
        print(f"reference python not found: {args.ref_python} (build it with shared/tools/reference-env.sh)")
        return 2

    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="llm2vec-parity-hub-"))
    cache, cache444, work = root / "hub", root / "hub-t444", root / "work"
    # huggingface_hub reads these when it is imported: ours resolves hub ids in the tiny cache, offline.
    assert "huggingface_hub" not in sys.modules, "huggingface_hub was imported before the cache was set"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_CACHE"] = os.fspath(cache)
    os.environ.pop("HF_HOME", None)
    import torch
    from huggingface_hub import constants

    from llm2vec_plugins import LLM2Vec
    from llm2vec_plugins.templates import TEMPLATES

    assert Path(constants.HF_HUB_CACHE) == cache and constants.HF_HUB_OFFLINE
    torch.set_num_threads(args.threads)
    try:
        all_ids = build_hub_cache(cache, work, args.families)
        lora_fields = reference_lora_fields(args.ref_python)
        build_t444_cache(cache, cache444, args.t444_tool, lora_fields)
        print(f"hub cache {cache}\n4.44 view {cache444}\nreference {args.ref_python}; {load_text()}")
        sentences = texts()
        rows: list[Row] = []
        checks: list[str] = []
        for family in args.families:
            ids = all_ids[family]
            template = TEMPLATES.get(ids.base)
            kwargs = {"attn_implementation": "eager"} if family == "gemma" else {}
            common = dict(python=args.ref_python, threads=args.threads, batch_size=args.batch_size)

            mntp = LLM2Vec.from_pretrained(ids.mntp, dtype="float32", device="cpu", **kwargs)
            stacked = LLM2Vec.from_pretrained(ids.mntp, peft_model_name_or_path=ids.supervised, dtype="float32",
                                              device="cpu", **kwargs)
            for name, encoder in (("mntp", mntp), ("mntp+supervised", stacked)):
                if encoder.template != template:
                    checks.append(f"{family} {name}: ours picked template {encoder.template!r}, expected {template!r}")
            emb_mntp, tok_mntp = mntp.encode(sentences, batch_size=args.batch_size), our_tokens(mntp, sentences)
            emb_stacked = stacked.encode(sentences, batch_size=args.batch_size)
            tok_stacked = our_tokens(stacked, sentences)
            tokenizer = stacked.tokenizer

            saved = stacked.save(work / f"{family}-saved")
            saved_config = json.loads((saved / "config.json").read_text()) if (saved / "config.json").is_file() else {}
            if saved_config.get("_name_or_path") != ids.base:
                checks.append(f"{family} save: config.json _name_or_path is {saved_config.get('_name_or_path')!r}, "
                              f"expected {ids.base!r}")
            view = work / f"{family}-saved-t444"
            t444_folder(saved, view, args.t444_tool, lora_fields)
            after_save = stacked.encode(sentences, batch_size=args.batch_size)  # save() merged the adapter
            if float(cosines(after_save, emb_stacked).min()) < args.threshold:
                checks.append(f"{family} save: our own vectors changed when save() merged the adapter")

            ref_mntp = run_reference(ids.mntp, sentences, peft_model=None, hub_cache=cache444, **common)
            ref_stacked = run_reference(ids.mntp, sentences, peft_model=ids.supervised, hub_cache=cache444, **common)
            ref_saved = run_reference(os.fspath(view), sentences, peft_model=None, hub_cache=cache444, **common)
            for case, ours_emb, ours_tok, ref, encoder in (
                    ("mntp", emb_mntp, tok_mntp, ref_mntp, mntp),
                    ("mntp+supervised", emb_stacked, tok_stacked, ref_stacked, stacked),
                    ("reference loads our save", emb_stacked, tok_stacked, ref_saved, stacked)):
                row = Row(family, case)
                compare(row, ours_emb, ours_tok, ref, sentences, tokenizer, template, args.show, encoder)
                rows.append(row)
            if ref_mntp.embeddings is not None and ref_stacked.embeddings is not None:
                moved = float(cosines(ref_mntp.embeddings, ref_stacked.embeddings).min())
                print(f"{family}: reference mntp vs mntp+supervised min cosine {moved:.4f} (the adapter moves vectors)")
                if moved >= 0.999:
                    checks.append(f"{family}: the supervised adapter does not change the reference's vectors")
            del mntp, stacked

        print(f"\n{len(sentences)} texts ({len(PLAIN)} plain, {len(PAIRED)} [instruction, text]), mean pooling, "
              f"skip_instruction=True, float32; threshold {args.threshold}\n")
        header = (f"{'family':<9}{'case':<27}{'template':<10}{'ids eq':<8}{'mask eq':<9}{'min cos':>11}{'mean cos':>11}"
                  f"{'min cos*':>11}  ref attention")
        print(header + "\n" + "-" * len(header))
        for row in rows:
            if row.status == "ok":
                attention = (f"CAUSAL (ours causal: min {row.cos_causal.min():.7f})" if row.reference_causal
                             else "bidirectional" if row.cos_ref_mask.min() >= args.threshold else "?")
                cos = f"{row.cos.min():>11.7f}{row.cos.mean():>11.7f}{row.cos_ref_mask.min():>11.7f}  {attention}"
            else:
                cos = "  unsupported by the reference" if row.status == "unsupported" else "  reference FAILED"
            mark = "" if passed(row) else "  <- FAIL"
            print(f"{row.family:<9}{row.case:<27}{row.template:<10}{row.ids_equal:<8}{row.masks_equal:<9}{cos}{mark}")
        print("min cos*: diagnostic, not gated: our model fed the reference's own ids and pooled mask "
              "(1.0 = same weights and attention; what differs is only which tokens are pooled).\n"
              "A row whose reference attention is CAUSAL (a reference bug) is gated on our model made causal.")
        for row in rows:
            for note in row.notes:
                print(f"\n[{row.family} / {row.case}] {note}")
        for check in checks:
            print(f"\nCHECK FAILED: {check}")
        ok = all(passed(r) for r in rows) and not checks
        print(f"\n{'PASS' if ok else 'FAIL'} in {time.perf_counter() - started:.0f} s; {load_text()}")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
