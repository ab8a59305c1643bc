"""Shared by the bench scripts: STS-B sentences, the transformers-4.44 view of a model folder, and
running the reference `llm2vec` in its own venv through `_reference_worker.py`."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# The project reads shared data by path, relative to the project root (see the contract).
SHARED = HERE.parent.parent / "shared"
STSB_TEST = SHARED / "data" / "sts" / "stsb" / "stsb-en-test.csv"
T444_TOOL = SHARED / "tools" / "t444_view.py"
REFERENCE_PYTHON = Path("/work/refvenv/bin/python")
MODEL_ALIAS = "smollm2-135m-instruct"


def stsb_sentences(path: str | os.PathLike = STSB_TEST) -> list[str]:
    """Unique sentences of an STS-B CSV (read by the package's own reader), first-seen order."""
    from llm2vec_plugins.evaluation.data import read_stsb

    pairs = read_stsb(path)
    return list(dict.fromkeys(s for pair in zip(pairs.sentences1, pairs.sentences2) for s in pair))


def reference_view(base: str | os.PathLike, tool: str | os.PathLike = T444_TOOL) -> Path:
    """A folder transformers 4.44 loads correctly, next to our dense cache (weights symlinked).

    Rebuilt on every call: it is a few small JSON files, and a stale view could hide a config fix.
    """
    from llm2vec_plugins.loading import cache_dir

    base = Path(base)
    target = cache_dir() / "t444-views" / base.name
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["python3", os.fspath(tool), os.fspath(base), os.fspath(target)], check=True,
                   stdout=subprocess.DEVNULL)
    return target


@dataclass
class ReferenceResult:
    embeddings: np.ndarray
    encode_seconds: float
    cpu_seconds: float
    tokens: list[dict] | None = None  # per sentence {"input_ids", "pooled"} when asked


def run_reference(
    model_dir: str | os.PathLike,
    jobs: list[dict],
    *,
    python: str | os.PathLike = REFERENCE_PYTHON,
    threads: int = 2,
    with_tokens: bool = False,
) -> list[ReferenceResult]:
    """Run the reference on each job ({"pooling_mode", "skip_instruction", "sentences", ...}) in
    ONE child process (loads are shared per pooling mode) and return the results in job order."""
    if not Path(python).is_file():
        raise FileNotFoundError(f"reference python not found: {python} (pass --ref-python)")
    with tempfile.TemporaryDirectory(prefix="llm2vec-ref-") as tmp:
        tmp = Path(tmp)
        request_jobs = []
        for i, job in enumerate(jobs):
            job = dict(job, out=os.fspath(tmp / f"{i}.npy"))
            if with_tokens:
                job["tokens_out"] = os.fspath(tmp / f"{i}.tokens.json")
            request_jobs.append(job)
        request = tmp / "request.json"
        request.write_text(json.dumps({"model": os.fspath(model_dir), "threads": threads, "jobs": request_jobs}))
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error",
                   PYTHONWARNINGS="ignore")
        proc = subprocess.run([os.fspath(python), os.fspath(HERE / "_reference_worker.py"), os.fspath(request)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"reference worker failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        results = []
        for job, line in zip(request_jobs, lines, strict=True):
            tokens = json.loads(Path(job["tokens_out"]).read_text()) if with_tokens else None
            results.append(ReferenceResult(np.load(job["out"]), float(line["encode_seconds"]),
                                           float(line["cpu_seconds"]), tokens))
        return results


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).clip(min=1e-30)


def load_text() -> str:
    """'load 1/5/15 min' of the machine, printed next to every timing (the cores are shared)."""
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
