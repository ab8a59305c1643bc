"""bench/gpu_check.py in its CPU smoke mode: every section runs and reports sane numbers.

One run of `python bench/gpu_check.py --device cpu --tiny --json out.json` (about a minute on 2 cores)
is shared by the tests below; each checks one promise of its JSON report.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("smollm2-135m", "llama-3-8b", "mistral-7b")
STAGES = ("mntp", "simcse", "supervised")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu-check") / "out.json"
    proc = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--tiny", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def sections(report: dict, model: str) -> dict:
    return report["models"][model]["sections"]


def test_every_model_family_is_checked(report):
    assert set(report["models"]) == set(MODELS)


def test_no_section_fails_on_cpu(report):
    assert report["errors"] == []
    for model in MODELS:
        for name, entry in sections(report, model).items():
            if name == "bidirectional_flash_attention_2":
                assert entry["status"] in ("ok", "skipped"), entry
            elif name.startswith("encode_reference"):  # no --reference-wheels given: skipped with a reason
                assert entry["status"] == "skipped" and "reference" in entry["note"], entry
            else:
                assert entry["status"] == "ok", (model, name, entry)


def test_attention_is_bidirectional_under_sdpa_and_eager(report):
    for model in MODELS:
        for kernel in ("sdpa", "eager"):
            entry = sections(report, model)[f"bidirectional_{kernel}"]
            assert entry["bidirectional"] is True and entry["min_change"] > 0, (model, kernel, entry)


def test_bf16_embeddings_agree_with_fp32(report):
    for model in MODELS:
        cosine = sections(report, model)["cosine_bf16_fp32"]
        assert cosine["min"] > 0.9 and cosine["mean"] >= cosine["min"], (model, cosine)


def test_every_throughput_is_positive(report):
    for model in MODELS:
        for name in ("encode_ours_bf16", "encode_ours_fp32", "encode_hf_loop_bf16"):
            entry = sections(report, model)[name]
            assert entry["tokens_per_s"] > 0 and entry["tokens"] > 0, (model, name, entry)


def test_every_training_stage_runs_its_steps_with_finite_losses(report):
    steps = report["meta"]["train_steps"]
    for model in MODELS:
        for stage in STAGES:
            entry = sections(report, model)[f"train_{stage}"]
            assert entry["steps"] == steps, (model, stage, entry)
            assert len(entry["losses"]) == steps and all(math.isfinite(x) for x in entry["losses"])
            assert entry["step_s"] > 0 and entry["peak_host_rss_gb"] > 0
