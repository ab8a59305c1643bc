"""GPU check of llm2vec-plugins on real model shapes with random weights: one script, no downloads.

    python bench/gpu_check.py                                    # CUDA: SmolLM2-135M, Llama-3-8B, Mistral-7B
    python bench/gpu_check.py --reference-wheels wheels/         # + the reference llm2vec 0.2.3 rows
    python bench/gpu_check.py --device cpu --tiny --json out.json  # 2-layer models of the same families
    python bench/gpu_check.py --download-reference-wheels wheels/  # once, where PyPI is reachable (~14 MB)

Models are random-initialised from configs written below (random weights run exactly as fast as
trained ones), tokenized by a byte-level BPE trained here on generated English sentences of 15-60
tokens, so nothing is downloaded and only the repository has to travel. Per model it reports:

- load: `LLM2Vec.from_pretrained(folder, dtype="bfloat16", device=...)` of the model saved once as bf16
  safetensors (time, peak host RSS, peak device memory); models over `--save-max-gb` are not saved, so
  they have no load or reference row.
- encode throughput (real tokens/s, batch size 32) of ours in bf16 and fp32 (the bf16 weights upcast
  in place), of the reference llm2vec 0.2.3 (transformers 4.44, own venv, child process, bf16 on CUDA,
  fp32 on CPU, loaded with device_map as its README does) and of a plain transformers loop (AutoModel
  forward with the attention mask, masked mean, batches in input order); each timed after a warm-up.
- cosine of our bf16 embeddings to fp32 (min / mean), and of ours to the reference's (same dtype).
- bidirectionality (`check_bidirectional`) under sdpa, eager and flash_attention_2 (when flash_attn is
  importable), with the cosine of each kernel's embeddings to sdpa's.
- 20 optimizer steps of each training stage (MNTP, SimCSE, supervised) through the package's own
  `llm2vec_plugins.training.train`, bf16 mixed precision, LoRA r=16, on synthetic data: time per step
  (first step apart) and peak memory. The model comes from the same in-memory builder instead of disk
  (a patched loader), so an 8B stage does not read 32 GB of fp32 weights three times.

Every section is guarded: an error (OOM, a missing kernel) is printed in its cell and the rest runs.
A time budget (`--budget`, 450 s) skips the sections that no longer fit and stops one that overruns,
then prints the table. Inference sections of all models run before any training, so a tight budget
drops training of the last model first. Exit status 1 when any section failed.

The reference venv: `--reference-wheels DIR` (wheels of llm2vec 0.2.3, transformers 4.44.2, tokenizers
0.19, huggingface_hub < 1, peft 0.12, for this Python version; `--download-reference-wheels DIR` writes
them) is installed offline into a fresh venv that takes torch, numpy and the other shared packages from
the running environment (a .pth file; its own transformers 4.44 comes first on sys.path). With a torch
wheel in DIR the venv is self-contained instead. `--reference-python PATH` uses a ready venv. Without
either, the reference rows say so and everything else runs.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import io
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

PROCESS_START = time.perf_counter()  # the budget counts imports too

# (transformers config class, kwargs): the published shapes. head_dim = hidden / heads everywhere.
MODELS: dict[str, tuple[str, str, dict]] = {
    "smollm2-135m": ("SmolLM2-135M", "LlamaConfig", dict(
        hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
        intermediate_size=1536, vocab_size=49152, rope_theta=100000.0, tie_word_embeddings=True,
        max_position_embeddings=8192, rms_norm_eps=1e-5)),
    "llama-3-8b": ("Llama-3-8B", "LlamaConfig", dict(
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        intermediate_size=14336, vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=False,
        max_position_embeddings=8192, rms_norm_eps=1e-5)),
    "mistral-7b": ("Mistral-7B", "MistralConfig", dict(
        hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        intermediate_size=14336, vocab_size=32000, rope_theta=1e6, tie_word_embeddings=False,
        max_position_embeddings=32768, sliding_window=None, rms_norm_eps=1e-5)),
}
TINY_SHAPE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128)
ATTENTION_KERNELS = ("sdpa", "eager", "flash_attention_2")
STAGES = ("mntp", "simcse", "supervised")
REFERENCE_REQUIREMENTS = ["transformers==4.44.2", "tokenizers>=0.19,<0.20", "huggingface_hub>=0.23.2,<1.0",
                          "peft==0.12.0"]
REFERENCE_SDIST = "llm2vec==0.2.3"  # published as a source archive only: built into a wheel once
INSTRUCTION = "Given a question, retrieve passages that answer the question:"
GB = 1024**3


# ----------------------------------------------------------------------------------------------------
# Synthetic text: sentences of ~15-60 tokens, and the tokenizer trained on them
# ----------------------------------------------------------------------------------------------------

_WORDS = {
    "det": "the a one every this that another some our their".split(),
    "adj": ("small large quiet busy old modern red bright careful tired young famous local remote wooden "
            "electric ancient sudden gentle heavy").split(),
    "noun": ("man woman child dog cat teacher doctor engineer farmer student river city train market garden "
             "library computer bridge museum kitchen village scientist musician company government").split(),
    "verb": ("reads builds watches carries paints visits repairs describes follows studies crosses opens "
             "sells finds explains measures protects designs").split(),
    "obj": ["a letter", "the old map", "a new report", "the broken window", "a long song", "the quarterly budget",
            "a heavy box", "the ancient temple", "a small boat", "the final exam", "a fresh loaf of bread",
            "the minutes of the city council"],
    "prep": "near inside behind across beyond beside under after before during".split(),
    "place": ["the station", "the harbour", "the mountain", "the school", "the hospital", "the stadium",
              "the forest", "the airport", "the factory", "the university"],
    "link": [", and then", ", because", ", while", "; meanwhile", ", although", ", so", ", but"],
}


def generate_sentences(count: int, seed: int = 0) -> list[str]:
    """English-like sentences of two to four clauses (about 20-60 BPE tokens each), deterministic."""
    rng = random.Random(seed)
    pick = lambda kind: rng.choice(_WORDS[kind])  # noqa: E731
    sentences = []
    for _ in range(count):
        clauses = []
        for _ in range(rng.choice((2, 2, 3, 3, 4))):
            year = f" in {rng.randint(1900, 2030)}" if rng.random() < 0.3 else ""
            clauses.append(f"{pick('det')} {pick('adj')} {pick('noun')} {pick('verb')} {pick('obj')} "
                           f"{pick('prep')} {pick('place')}{year}")
        text = clauses[0]
        for clause in clauses[1:]:
            text += f"{pick('link')} {clause}"
        sentences.append(text[0].upper() + text[1:] + rng.choice(".!?."))
    return sentences


def build_tokenizer(path: Path, vocab_size: int = 4000):
    """A byte-level BPE (ids < vocab_size, so valid in every model here) trained on generated text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(generate_sentences(3000, seed=12345), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        pad_token="</s>")
    tokenizer.save_pretrained(path)
    return tokenizer


def write_training_data(folder: Path, count: int) -> dict[str, Path]:
    """Texts for MNTP / SimCSE and E5-style JSONL rows for the supervised stage."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = generate_sentences(count, seed=7)
    (folder / "texts.txt").write_text("\n".join(texts) + "\n")
    # Query: a passage's first clause; positive: the passage; hard negative: the next passage.
    rows = [{"query": text.split(",")[0].split(";")[0], "positive": text, "negative": negative,
             "instruction": INSTRUCTION, "dataset": "synthetic"}
            for text, negative in zip(texts, texts[1:] + texts[:1], strict=True)]
    (folder / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"mntp": folder / "texts.txt", "simcse": folder / "texts.txt", "supervised": folder / "pairs.jsonl"}


# ----------------------------------------------------------------------------------------------------
# Memory, time budget and guarded sections
# ----------------------------------------------------------------------------------------------------

def _host_peak_reset() -> bool:
    """Reset this process's peak RSS (VmHWM) so a section's peak is its own; False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _host_peak_gb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


class BudgetExceeded(BaseException):
    """Raised by the alarm when the time budget is spent (a BaseException: library code that catches
    Exception must not swallow it)."""


class Run:
    """Holds the results, the deadline, and runs each section guarded."""

    def __init__(self, budget_s: float, device: str) -> None:
        self.start = PROCESS_START
        self.deadline = self.start + budget_s
        self.budget_s = budget_s
        self.device = device
        self.expired = False
        self.models: dict[str, dict] = {}
        self.host_peak_is_per_section = _host_peak_reset()
        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, max(self.remaining(), 0.01))

    def _on_alarm(self, signum, frame) -> None:
        self.expired = True
        raise BudgetExceeded(f"time budget of {self.budget_s:.0f} s spent")

    def stop_alarm(self) -> None:
        if hasattr(signal, "SIGALRM"):
            signal.setitimer(signal.ITIMER_REAL, 0)

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def section(self, model: str, name: str, fn, *, estimate_s: float = 0.0, needs: tuple[str, ...] = ()) -> dict:
        """Run fn(entry) for `name` of `model`, recording its status (ok, error, skipped, or stopped by the
        budget), time and peak memory (host RSS, and device memory on CUDA)."""
        sections = self.models[model]["sections"]
        entry: dict = {}
        sections[name] = entry
        missing = [n for n in needs if sections.get(n, {}).get("status") != "ok"]
        if missing:
            entry.update(status="skipped", note=f"needs {', '.join(missing)}")
        elif self.expired:
            entry.update(status="skipped", note="time budget spent")
        elif self.remaining() < estimate_s:
            entry.update(status="skipped",
                         note=f"time budget: {self.remaining():.0f} s left, needs ~{estimate_s:.0f} s")
        else:
            import torch

            cuda = self.device == "cuda"
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            _host_peak_reset()
            start = time.perf_counter()
            try:
                fn(entry)
                entry.setdefault("status", "ok")
            except BudgetExceeded as err:
                entry.update(status="stopped", note=str(err))
            except SkipSection as skip:
                entry.update(status="skipped", note=str(skip))
            except Exception as err:  # noqa: BLE001 - the point is to report it and go on
                entry.update(status="error", error=f"{type(err).__name__}: {err}".strip())
                traceback.print_exc(file=sys.stderr)
            entry["seconds"] = round(time.perf_counter() - start, 3)
            entry["peak_host_rss_gb"] = round(_host_peak_gb(), 3)
            if cuda:
                entry["peak_device_gb"] = round(torch.cuda.max_memory_allocated() / GB, 3)
            # A failed section leaves tensors behind only through its traceback, which is gone by now.
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
                entry["device_allocated_after_gb"] = round(torch.cuda.memory_allocated() / GB, 3)  # leak check
        status = entry["status"]
        detail = entry.get("error") or entry.get("note") or ""
        print(f"[{self.elapsed():6.1f} s] {self.models[model]['name']:<13} {name:<28} {status:<8} "
              f"{entry.get('seconds', 0):7.2f} s  {detail[:150]}", flush=True)
        return entry


class SkipSection(Exception):
    """A section that cannot run here (missing kernel, no reference venv): reported as skipped."""


def estimate(kind: str, params_b: float, device: str) -> float:
    """Rough seconds a section takes on an H200 (params in billions), to skip what no longer fits.
    Only a guide: the alarm stops a section that overruns."""
    if device != "cuda":
        return 0.0
    base, per_b = {"build": (2, 0.3), "save": (3, 1.5), "load": (5, 1.5), "encode_bf16": (3, 0.5),
                   "hf_loop": (3, 0.5), "bidirectional": (2, 0.3), "encode_fp32": (4, 1.5), "reference": (20, 2),
                   "train": (8, 2)}[kind]
    return base + per_b * params_b


# ----------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------

@dataclass
class ModelSpec:
    key: str
    name: str
    config_class: str
    config_kwargs: dict
    params_b: float = 0.0
    folder: Path | None = None
    embeddings: dict = field(default_factory=dict)


def model_config(spec: ModelSpec, tokenizer, tiny: bool):
    import transformers

    kwargs = dict(spec.config_kwargs)
    if tiny:
        kwargs |= TINY_SHAPE | {"vocab_size": math.ceil(len(tokenizer) / 64) * 64, "max_position_embeddings": 512}
    return getattr(transformers, spec.config_class)(
        **kwargs, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)


def build_model(config, *, dtype, device: str, causal_lm: bool = False, seed: int = 0):
    """A random model of `config`, allocated and initialised directly on `device` (no host copy)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = (AutoModelForCausalLM if causal_lm else AutoModel).from_config(config, dtype=dtype)
    return model.eval()


def wrap_encoder(model, tokenizer):
    """An LLM2Vec around an in-memory model, as `from_pretrained` would set it up."""
    from llm2vec_plugins import LLM2Vec, set_bidirectional

    set_bidirectional(model)
    return LLM2Vec(model.eval(), tokenizer)


def count_tokens(tokenizer, texts: list[str]) -> int:
    return sum(len(ids) for ids in tokenizer(texts)["input_ids"])


def timed(fn, device: str):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def hf_loop(model, tokenizer, texts: list[str], batch_size: int, device: str):
    """What a user writes without llm2vec: padded batches in input order, forward, masked mean."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], padding=True, return_tensors="pt")
            batch = {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1)).float().cpu())
    return torch.cat(out).numpy()


def throughput(entry: dict, seconds: float, texts: list[str], tokens: int) -> None:
    entry.update(texts=len(texts), tokens=tokens, encode_seconds=round(seconds, 4),
                 tokens_per_s=round(tokens / seconds, 1), texts_per_s=round(len(texts) / seconds, 2))


def cosine_stats(a, b) -> dict:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).clip(min=1e-30)
    return {"min": round(float(cos.min()), 6), "mean": round(float(cos.mean()), 6)}


# ----------------------------------------------------------------------------------------------------
# The reference llm2vec 0.2.3 (transformers 4.44) in its own venv
# ----------------------------------------------------------------------------------------------------

def write_t444_view(src: Path, dst: Path) -> Path:
    """A folder transformers 4.44 loads correctly from one saved by 5.x (weights symlinked).

    Same fixes as shared/tools/t444_view.py, which does not travel with the repository: RoPE base moved
    to top-level rope_theta (4.44 silently uses 10000 otherwise), the 5.x tokenizer class and BPE merge
    format, and no token_type_ids.
    """
    dst.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.suffix == ".safetensors" or path.name == "model.safetensors.index.json":
            link = dst / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
    config = json.loads((src / "config.json").read_text())
    rope = config.pop("rope_parameters", None)
    if rope:
        if rope.get("rope_type", "default") != "default":
            config["rope_scaling"] = rope
        config["rope_theta"] = rope["rope_theta"]
    if "dtype" in config:
        config["torch_dtype"] = config.pop("dtype")
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    tok_config = json.loads((src / "tokenizer_config.json").read_text())
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("backend", "is_local", "local_files_only"):
        tok_config.pop(key, None)
    tok_config["model_input_names"] = ["input_ids", "attention_mask"]
    (dst / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
    tok = json.loads((src / "tokenizer.json").read_text())
    merges = tok.get("model", {}).get("merges")
    if merges and isinstance(merges[0], list):
        tok["model"]["merges"] = [" ".join(pair) for pair in merges]
    (dst / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    return dst


def download_reference_wheels(folder: Path) -> None:
    """Fill `folder` with what the reference venv needs beyond the running environment (~14 MB)."""
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "download", "--no-deps", "-d", str(folder), *REFERENCE_REQUIREMENTS], check=True)
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), REFERENCE_SDIST], check=True)
    print(f"reference wheels in {folder} (for Python {sys.version_info.major}.{sys.version_info.minor}, "
          f"{sysconfig.get_platform()}): " + ", ".join(sorted(p.name for p in folder.glob("*.whl"))))


def _shared_site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(os.path.realpath(paths[k]) for k in ("purelib", "platlib")))


def reference_python(args, notes: dict) -> Path:
    """The python of a venv with the reference installed: given, already built, or built from wheels."""
    if args.reference_python:
        python = Path(args.reference_python)
        if not python.is_file():
            raise SkipSection(f"--reference-python {python} not found")
        return python
    if not args.reference_wheels:
        raise SkipSection("no --reference-wheels DIR (see --download-reference-wheels)")
    wheels = Path(args.reference_wheels)
    files = sorted(wheels.glob("*.whl")) + sorted(wheels.glob("*.tar.gz")) if wheels.is_dir() else []
    if not files:
        raise SkipSection(f"reference wheels folder {wheels} is missing or empty")
    version = f"{sys.version_info.major}{sys.version_info.minor}"
    venv = Path(args.reference_venv or Path(tempfile.gettempdir()) / f"llm2vec-gpu-check-refvenv-py{version}")
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import llm2vec, transformers; print(transformers.__version__)"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    start = time.perf_counter()
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    if not any(f.name.lower().startswith("torch-") for f in files):
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        # Appended after the venv's own site-packages: its transformers 4.44 wins, torch comes from here.
        Path(site, "_gpu_check_shared_env.pth").write_text("\n".join(_shared_site_dirs()) + "\n")
    # --ignore-installed: never look at (let alone uninstall) what the shared environment holds.
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index",
                           "--find-links", str(wheels), "--no-deps", "--ignore-installed", "--no-build-isolation",
                           *map(str, files)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"installing the reference wheels failed: {proc.stderr.strip()[-1500:]}")
    proc = subprocess.run(check, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the reference venv does not import llm2vec: {proc.stderr.strip()[-1500:]}")
    notes["reference_venv"] = {"path": str(venv), "build_seconds": round(time.perf_counter() - start, 1),
                               "transformers": proc.stdout.strip()}
    return python


def run_reference(python: Path, view: Path, texts: list[str], *, dtype: str, device: str, batch_size: int,
                  warmup: int, workdir: Path, timeout: float) -> dict:
    request = {"model": str(view), "dtype": dtype, "device": device, "batch_size": batch_size, "warmup": warmup,
               "sentences": texts, "out": str(workdir / "reference.npy")}
    path = workdir / "reference_request.json"
    path.write_text(json.dumps(request))
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error", PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)
    try:
        proc = subprocess.run([str(python), str(Path(__file__).resolve()), "--reference-worker", str(path)],
                              capture_output=True, text=True, env=env, timeout=max(timeout, 1))
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"reference worker still running after {timeout:.0f} s (time budget)") from err
    if proc.returncode != 0:
        raise RuntimeError(f"reference worker failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    line = next(line for line in reversed(proc.stdout.splitlines()) if line.startswith("{"))
    return json.loads(line)


def reference_worker(request_path: str) -> None:
    """Runs under the reference venv's python: load with llm2vec 0.2.3, time its encode(), save .npy."""
    import numpy as np
    import torch
    from llm2vec import LLM2Vec

    request = json.loads(Path(request_path).read_text())
    device, dtype = request["device"], getattr(torch, request["dtype"])
    kwargs = {"device_map": device} if device == "cuda" else {}  # its README's way to load on a GPU
    start = time.perf_counter()
    model = LLM2Vec.from_pretrained(request["model"], enable_bidirectional=True, pooling_mode="mean",
                                    torch_dtype=dtype, **kwargs)
    load_seconds = time.perf_counter() - start
    texts, batch_size = request["sentences"], request["batch_size"]
    encode = lambda items: model.encode(items, batch_size=batch_size, show_progress_bar=False,  # noqa: E731
                                        convert_to_numpy=True, device=device)
    encode(texts[: request["warmup"]])
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    embeddings = encode(texts)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    np.save(request["out"], np.asarray(embeddings, dtype=np.float32))
    import transformers

    print(json.dumps({"load_seconds": load_seconds, "encode_seconds": seconds, "peak_host_rss_gb": _host_peak_gb(),
                      "peak_device_gb": torch.cuda.max_memory_allocated() / GB if device == "cuda" else None,
                      "transformers": transformers.__version__}), flush=True)


# ----------------------------------------------------------------------------------------------------
# Training through the package's own train()
# ----------------------------------------------------------------------------------------------------

def step_timer(device: str):
    """A TrainerCallback recording wall time per optimizer step (device synchronised)."""
    import torch
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.last = 0.0

        def _now(self) -> float:
            if device == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            self.times, self.last = [], self._now()

        def on_step_end(self, args, state, control, **kwargs):
            now = self._now()
            self.times.append(now - self.last)
            self.last = now

    return StepTimer()


@contextlib.contextmanager
def in_memory_training(config, tokenizer_dir: Path, device: str, timer):
    """Make `train()` build its model in memory (same random builder) and time every step.

    Two seams, restored afterwards: the trainer module's `load_base_model` (the only place it reads
    weights) and transformers' default Trainer callbacks (`fit()` takes no callbacks of its own).
    """
    import transformers.trainer as hf_trainer
    from transformers import AutoModelForCausalLM

    import llm2vec_plugins.training.trainer as ours
    from llm2vec_plugins.loading import ResolvedModel, load_tokenizer

    def load_base_model(name, *, model_class=None, dtype=None, **kwargs):
        model = build_model(config, dtype=dtype, device=device, causal_lm=model_class is AutoModelForCausalLM)
        return model, load_tokenizer(str(tokenizer_dir)), ResolvedModel(str(name))

    saved = ours.load_base_model, hf_trainer.DEFAULT_CALLBACKS
    ours.load_base_model = load_base_model
    hf_trainer.DEFAULT_CALLBACKS = [*saved[1], timer]
    try:
        yield
    finally:
        ours.load_base_model, hf_trainer.DEFAULT_CALLBACKS = saved


def train_stage(entry: dict, stage: str, config, tokenizer_dir: Path, data: Path, output_dir: Path, *,
                device: str, steps: int, batch_size: int) -> None:
    import torch

    from llm2vec_plugins.training import train

    timer = step_timer(device)
    log = io.StringIO()  # Trainer prints every step's log dict; the table reports them
    with in_memory_training(config, tokenizer_dir, device, timer), contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        result = train(stage, model=f"in-memory-{config.model_type}", data=str(data), output_dir=str(output_dir),
                       max_steps=steps, batch_size=batch_size, max_length=128, bf16=True, logging_steps=1,
                       save_steps=10**9, progress=False, save_dtype="bfloat16", learning_rate=1e-4, seed=0)
    losses = [float(h["loss"]) for h in result.log_history if "loss" in h]
    steady = timer.times[1:] or timer.times
    entry.update(steps=result.global_step, batch_size=batch_size, precision="bf16 autocast over fp32 weights",
                 first_step_s=round(timer.times[0], 4) if timer.times else None,
                 step_s=round(statistics.median(steady), 4) if steady else None,
                 losses=losses, losses_finite=bool(losses) and all(map(math.isfinite, losses)),
                 train_seconds=round(result.train_seconds, 2))
    if device == "cuda":
        entry["device"] = torch.cuda.get_device_name()
    shutil.rmtree(output_dir, ignore_errors=True)
    if not entry["losses_finite"]:
        raise RuntimeError(f"non-finite or missing losses: {losses}")


# ----------------------------------------------------------------------------------------------------
# Per-model checks
# ----------------------------------------------------------------------------------------------------

def check_inference(run: Run, spec: ModelSpec, args, ctx: SimpleNamespace) -> None:
    """Build, save, load, encode (ours bf16 / fp32, plain loop, reference), bidirectionality."""
    import torch

    from llm2vec_plugins import LLM2Vec, check_bidirectional, set_bidirectional

    device, texts, tokenizer = args.device, ctx.texts, ctx.tokenizer
    config = model_config(spec, tokenizer, args.tiny)
    state = SimpleNamespace(built=None, encoder=None)
    p = spec.params_b
    tokens = count_tokens(tokenizer, texts)

    def build(entry):
        state.built = build_model(config, dtype=torch.bfloat16, device=device)
        n = sum(x.numel() for x in state.built.parameters())
        spec.params_b = n / 1e9
        entry.update(params=n, dtype="bfloat16", device=device)

    run.section(spec.key, "build", build, estimate_s=estimate("build", p, device))

    def save(entry):
        size_gb = spec.params_b * 2e9 / GB
        free_gb = shutil.disk_usage(ctx.workdir).free / GB
        if size_gb > args.save_max_gb:
            raise SkipSection(f"{size_gb:.1f} GB > --save-max-gb {args.save_max_gb:g}: no load / reference rows")
        if free_gb < 2 * size_gb + 1:
            raise SkipSection(f"{size_gb:.1f} GB to write, {free_gb:.1f} GB free: no load / reference rows")
        folder = ctx.workdir / spec.key
        state.built.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        spec.folder = folder
        entry.update(size_gb=round(sum(f.stat().st_size for f in folder.glob("*.safetensors")) / GB, 3))

    run.section(spec.key, "save", save, estimate_s=estimate("save", p, device), needs=("build",))

    if spec.folder is not None:
        state.built = None  # the load below must start from nothing, as a user's does
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()

    def load(entry):
        state.encoder = LLM2Vec.from_pretrained(spec.folder, dtype="bfloat16", device=device)
        entry.update(call='LLM2Vec.from_pretrained(folder, dtype="bfloat16", device=...)',
                     bidirectional_verified=True)

    run.section(spec.key, "load", load, estimate_s=estimate("load", p, device), needs=("save",))
    if state.encoder is None:
        def build_encoder(entry):
            state.encoder = wrap_encoder(state.built or build_model(config, dtype=torch.bfloat16, device=device),
                                         tokenizer)
            state.built = None
            entry["note"] = "in-memory model (not saved or not loaded)"

        run.section(spec.key, "build_encoder", build_encoder, estimate_s=estimate("build", p, device))
    ready = ("build_encoder",) if "build_encoder" in run.models[spec.key]["sections"] else ("load",)
    batch = args.batch_size

    def encode_ours(dtype_name):
        def section(entry):
            state.encoder.encode(texts[: args.warmup], batch_size=batch)
            seconds, emb = timed(lambda: state.encoder.encode(texts, batch_size=batch), device)
            spec.embeddings[f"ours_{dtype_name}"] = emb
            throughput(entry, seconds, texts, tokens)
            entry["dtype"] = dtype_name
        return section

    run.section(spec.key, "encode_ours_bf16", encode_ours("bf16"), estimate_s=estimate("encode_bf16", p, device),
                needs=ready)

    def encode_hf_loop(entry):
        model = state.encoder.model
        set_bidirectional(model, False)  # as AutoModel loads it: causal
        try:
            hf_loop(model, tokenizer, texts[: args.warmup], batch, device)
            seconds, _ = timed(lambda: hf_loop(model, tokenizer, texts, batch, device), device)
        finally:
            set_bidirectional(model, True)
        throughput(entry, seconds, texts, tokens)
        entry.update(dtype="bf16", note="same weights, causal as loaded, padded batches in input order")

    run.section(spec.key, "encode_hf_loop_bf16", encode_hf_loop, estimate_s=estimate("hf_loop", p, device),
                needs=ready)

    probe = texts[:64]
    for kernel in ATTENTION_KERNELS:
        def bidirectional(entry, kernel=kernel):
            model = state.encoder.model
            if kernel == "flash_attention_2":
                if device != "cuda":
                    raise SkipSection("flash_attention_2 needs CUDA")
                if importlib.util.find_spec("flash_attn") is None:
                    raise SkipSection("flash_attn not installed")
            reference = spec.embeddings.get("probe_sdpa")
            model.set_attn_implementation(kernel)
            try:
                report = check_bidirectional(model)
                emb = state.encoder.encode(probe, batch_size=batch)
            finally:
                model.set_attn_implementation("sdpa")
            entry.update(bidirectional=report.is_bidirectional, min_change=min(report.changes.values()),
                         cases=report.changes)
            if kernel == "sdpa":
                spec.embeddings["probe_sdpa"] = emb
            elif reference is not None:
                entry["cosine_to_sdpa"] = cosine_stats(emb, reference)
            if not report.is_bidirectional:
                raise RuntimeError(f"attention is not bidirectional under {kernel}: {report}")

        run.section(spec.key, f"bidirectional_{kernel}", bidirectional,
                    estimate_s=estimate("bidirectional", p, device), needs=ready)

    def encode_fp32(entry):
        state.encoder.model.float()  # the bf16 weights, upcast exactly: only activations differ
        encode_ours("fp32")(entry)

    run.section(spec.key, "encode_ours_fp32", encode_fp32, estimate_s=estimate("encode_fp32", p, device), needs=ready)

    def cosine_bf16_fp32(entry):
        entry.update(cosine_stats(spec.embeddings["ours_bf16"], spec.embeddings["ours_fp32"]), texts=len(texts))

    run.section(spec.key, "cosine_bf16_fp32", cosine_bf16_fp32, needs=("encode_ours_bf16", "encode_ours_fp32"))
    state.encoder = state.built = None
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()

    ref_dtype = "bfloat16" if device == "cuda" else "float32"

    def reference(entry):
        if spec.folder is None:
            raise SkipSection("model not saved (see save)")
        python = reference_python(args, ctx.notes)
        view = write_t444_view(spec.folder, ctx.workdir / f"{spec.key}-t444")
        result = run_reference(python, view, texts, dtype=ref_dtype, device=device, batch_size=batch,
                               warmup=args.warmup, workdir=ctx.workdir, timeout=run.remaining())
        import numpy as np

        emb = np.load(ctx.workdir / "reference.npy")
        throughput(entry, result["encode_seconds"], texts, tokens)
        ours_key = "ours_bf16" if ref_dtype == "bfloat16" else "ours_fp32"
        entry.update(dtype=ref_dtype, load_seconds=round(result["load_seconds"], 3),
                     ref_peak_host_rss_gb=round(result["peak_host_rss_gb"], 3),
                     ref_peak_device_gb=result["peak_device_gb"] and round(result["peak_device_gb"], 3),
                     transformers=result["transformers"], python=str(python))
        if ours_key in spec.embeddings:
            entry[f"cosine_to_{ours_key}"] = cosine_stats(emb, spec.embeddings[ours_key])

    run.section(spec.key, f"encode_reference_{'bf16' if ref_dtype == 'bfloat16' else 'fp32'}", reference,
                estimate_s=estimate("reference", p, device))
    if spec.folder is not None and not args.keep:
        shutil.rmtree(spec.folder, ignore_errors=True)
        shutil.rmtree(ctx.workdir / f"{spec.key}-t444", ignore_errors=True)


def check_training(run: Run, spec: ModelSpec, args, ctx: SimpleNamespace) -> None:
    config = model_config(spec, ctx.tokenizer, args.tiny)
    for stage in STAGES:
        run.section(spec.key, f"train_{stage}",
                    lambda entry, stage=stage: train_stage(
                        entry, stage, config, ctx.tokenizer_dir, ctx.train_data[stage],
                        ctx.workdir / f"train-{spec.key}-{stage}", device=args.device, steps=args.train_steps,
                        batch_size=args.train_batch_size),
                    estimate_s=estimate("train", spec.params_b, args.device))


# ----------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------

def _cell(entry: dict | None, fmt) -> str:
    if not entry:
        return "-"
    if entry.get("status") == "error":  # the whole message is listed under the table
        return "ERROR " + entry["error"][:60].replace("|", "/").replace("\n", " ")
    if entry.get("status") in ("skipped", "stopped"):
        note = entry.get("note", "")
        return f"{entry['status']}: " + (note[:60] + "..." if len(note) > 63 else note).replace("|", "/")
    try:
        return fmt(entry)
    except (KeyError, TypeError, ValueError) as err:
        return f"? ({type(err).__name__})"


def _mem(entry: dict) -> str:
    device = f", device {entry['peak_device_gb']:.2f} GB" if entry.get("peak_device_gb") is not None else ""
    return f"RSS {entry['peak_host_rss_gb']:.2f} GB{device}"


def _ratio(a: dict | None, b: dict | None) -> str:
    if a and b and a.get("status") == b.get("status") == "ok":
        return f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x"
    return "-"


def _tokens_per_s(entry: dict) -> str:
    return f"{entry['tokens_per_s']:,.0f}"


def _bidirectional(entry: dict) -> str:
    text = ("yes" if entry["bidirectional"] else "NO") + f" (min change {entry['min_change']:.3g}"
    if "cosine_to_sdpa" in entry:
        text += f", cos to sdpa {entry['cosine_to_sdpa']['min']:.4f}"
    return text + ")"


def _cosine_to_ours(entry: dict) -> str:
    return next(f"{v['min']:.4f} ({k.split('_to_')[1]})" for k, v in entry.items() if k.startswith("cosine_to_"))


def table(run: Run) -> str:
    """The markdown table: one row per check, one column per model."""
    keys = list(run.models)
    ref = next((n for k in keys for n in run.models[k]["sections"] if n.startswith("encode_reference")),
               "encode_reference")
    # (label, section, how to show an ok entry); the two ratio rows compare two sections instead.
    rows = [
        ("parameters", "build", lambda e: f"{e['params'] / 1e6:,.4g} M"),
        ("save bf16 safetensors", "save", lambda e: f"{e['seconds']:.1f} s, {e['size_gb']:.2f} GB"),
        ("load: from_pretrained bf16", "load", lambda e: f"{e['seconds']:.1f} s"),
        ("load: peak memory", "load", _mem),
        ("encode ours bf16 (tokens/s)", "encode_ours_bf16", _tokens_per_s),
        ("encode ours fp32 (tokens/s)", "encode_ours_fp32", _tokens_per_s),
        (f"encode reference {ref.rsplit('_', 1)[-1]} (tokens/s)", ref,
         lambda e: f"{_tokens_per_s(e)} (load {e['load_seconds']:.1f} s)"),
        ("encode plain transformers bf16 (tokens/s)", "encode_hf_loop_bf16", _tokens_per_s),
        ("ours bf16 / reference", ("encode_ours_bf16", ref), None),
        ("ours bf16 / plain transformers", ("encode_ours_bf16", "encode_hf_loop_bf16"), None),
        ("encode peak memory (bf16)", "encode_ours_bf16", _mem),
        ("cosine bf16 vs fp32 (min / mean)", "cosine_bf16_fp32", lambda e: f"{e['min']:.4f} / {e['mean']:.4f}"),
        ("cosine reference vs ours (min)", ref, _cosine_to_ours),
        *[(f"bidirectional {kernel}", f"bidirectional_{kernel}", _bidirectional) for kernel in ATTENTION_KERNELS],
    ]
    for stage in STAGES:
        rows.append((f"train {stage}: s/step (first step)", f"train_{stage}",
                     lambda e: f"{e['step_s']:.3f} ({e['first_step_s']:.2f}), {e['steps']} steps"))
        rows.append((f"train {stage}: peak memory, loss", f"train_{stage}",
                     lambda e: f"{_mem(e)}; {e['losses'][0]:.4g} -> {e['losses'][-1]:.4g}"))

    def cell(key: str, section, fmt) -> str:
        sections = run.models[key]["sections"]
        if fmt is None:
            return _ratio(sections.get(section[0]), sections.get(section[1]))
        return _cell(sections.get(section), fmt)

    lines = ["| check | " + " | ".join(run.models[k]["name"] for k in keys) + " |",
             "| --- |" + " --- |" * len(keys)]
    lines += [f"| {label} | " + " | ".join(cell(k, section, fmt) for k in keys) + " |" for label, section, fmt in rows]
    return "\n".join(lines)


def problems(run: Run, status: str = "error", detail: str = "error") -> list[str]:
    """'model / section: message' for every section with `status`."""
    return [f"{model['name']} / {name}: {entry[detail]}" for model in run.models.values()
            for name, entry in model["sections"].items() if entry.get("status") == status]


# ----------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    parser.add_argument("--tiny", action="store_true", help="2-layer models of the same families, few texts, 3 steps")
    parser.add_argument("--models", default=None,
                        help=f"comma-separated, of {', '.join(MODELS)} "
                             "(default: all; on CPU without --tiny: smollm2-135m)")
    parser.add_argument("--json", type=Path, default=None, help="also write all results to this JSON file")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run (default 450)")
    parser.add_argument("--texts", type=int, default=None, help="texts to encode (default 512; CPU 32; tiny 48)")
    parser.add_argument("--batch-size", type=int, default=32, help="encode batch size, every row (default 32)")
    parser.add_argument("--warmup", type=int, default=32, help="texts encoded untimed before each timed row")
    parser.add_argument("--train-steps", type=int, default=None, help="steps per stage (default 20; CPU 2; tiny 3)")
    parser.add_argument("--train-batch-size", type=int, default=None, help="default 32; CPU or tiny 4")
    parser.add_argument("--save-max-gb", type=float, default=40.0,
                        help="save (and so load-time and reference rows) only models up to this many GB in bf16")
    parser.add_argument("--reference-wheels", default=None, help="folder of wheels for the reference venv")
    parser.add_argument("--reference-python", default=None, help="python of a ready reference venv instead")
    parser.add_argument("--reference-venv", default=None, help="where to build the reference venv (default: in TMPDIR)")
    parser.add_argument("--download-reference-wheels", type=Path, default=None, metavar="DIR",
                        help="write the reference wheels to DIR (needs PyPI) and exit")
    parser.add_argument("--workdir", type=Path, default=None, help="for saved models and data (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (saved models, data)")
    parser.add_argument("--reference-worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.reference_worker:
        reference_worker(args.reference_worker)
        return 0
    if args.download_reference_wheels:
        download_reference_wheels(args.download_reference_wheels)
        return 0
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the trainers pick CUDA whenever they see one
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the GPU box has no internet: fail fast, never hang
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore")  # bf16-on-CPU and deprecation notices: this prints a report
    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    cpu_real = args.device == "cpu" and not args.tiny
    args.texts = args.texts or (48 if args.tiny else 32 if cpu_real else 512)
    args.train_steps = args.train_steps or (3 if args.tiny else 2 if cpu_real else 20)
    args.train_batch_size = args.train_batch_size or (4 if args.tiny or cpu_real else 32)
    args.warmup = min(args.warmup, args.texts)
    keys = args.models.split(",") if args.models else (["smollm2-135m"] if cpu_real else list(MODELS))
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}", file=sys.stderr)
        return 2

    run = Run(args.budget, args.device)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llm2vec-gpu-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else (
        f"CPU, {torch.get_num_threads()} threads")
    meta = {"device": args.device, "device_name": device_name, "tiny": args.tiny, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": sys.version.split()[0], "budget_s": args.budget,
            "texts": args.texts, "batch_size": args.batch_size, "train_steps": args.train_steps,
            "train_batch_size": args.train_batch_size,
            "flash_attn": importlib.util.find_spec("flash_attn") is not None}
    print(f"gpu_check: {device_name}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{'tiny ' if args.tiny else ''}models {', '.join(keys)}, {args.texts} texts, budget {args.budget:.0f} s",
          flush=True)
    specs = [ModelSpec(k, *MODELS[k]) for k in keys]
    for spec in specs:
        run.models[spec.key] = {"name": spec.name + (" (tiny)" if args.tiny else ""), "sections": {}}
        # Only a guide for the budget until the build reports the real count.
        spec.params_b = {"smollm2-135m": 0.135, "llama-3-8b": 7.5, "mistral-7b": 7.1}[spec.key] * (not args.tiny)
    ctx = SimpleNamespace(workdir=workdir, notes={}, texts=[], tokenizer=None)
    try:
        try:
            ctx.tokenizer_dir = workdir / "tokenizer"
            build_tokenizer(ctx.tokenizer_dir)
            from llm2vec_plugins.loading import load_tokenizer

            ctx.tokenizer = load_tokenizer(str(ctx.tokenizer_dir))
            ctx.texts = generate_sentences(args.texts, seed=1)
            lengths = [len(ids) for ids in ctx.tokenizer(ctx.texts)["input_ids"]]
            meta["tokens"] = sum(lengths)
            meta["tokens_per_text"] = f"{min(lengths)}-{max(lengths)}, mean {sum(lengths) / len(lengths):.1f}"
            ctx.train_data = write_training_data(workdir / "data", max(64, args.train_steps * args.train_batch_size))
            for check in (check_inference, check_training):
                for spec in specs:
                    try:
                        check(run, spec, args, ctx)
                    except BudgetExceeded:
                        pass  # the alarm rang between two sections: the rest report themselves skipped
        except BudgetExceeded as err:
            print(f"stopped while preparing: {err}", file=sys.stderr)
    finally:
        run.stop_alarm()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    wall = run.elapsed()
    errors = problems(run)
    print(f"\n## llm2vec-plugins GPU check: {device_name}, {wall:.0f} s of {args.budget:.0f} s budget\n")
    print(f"{args.texts} texts, {meta.get('tokens', 0)} tokens ({meta.get('tokens_per_text')} per text), encode "
          f"batch size {args.batch_size}; training {args.train_steps} steps x batch {args.train_batch_size}; "
          f"torch {torch.__version__}, transformers {transformers.__version__}\n")
    print(table(run))
    print("\nRandom weights: speed and memory are the real models'; the cosines check the precision path and the "
          "kernels, not a trained checkpoint's accuracy (trained models have activation outliers that random "
          "ones lack).")
    if ctx.notes.get("reference_venv"):
        print(f"\nreference venv built in {ctx.notes['reference_venv']['build_seconds']} s "
              f"({ctx.notes['reference_venv']['path']})")
    skipped = problems(run, "stopped", "note") + problems(run, "skipped", "note")
    if skipped:
        print("\nskipped or stopped:\n" + "\n".join(f"- {line}" for line in skipped))
    if errors:
        print("\nerrors:\n" + "\n".join(f"- {line}" for line in errors))
    if args.json:
        report = {"meta": meta | {"wall_seconds": round(wall, 1)}, "notes": ctx.notes, "models": run.models,
                  "errors": errors, "skipped": skipped}
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nwrote {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
