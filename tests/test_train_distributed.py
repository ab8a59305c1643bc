"""SimCSE under `torchrun --nproc_per_node 2` (CPU, gloo): negatives come from both processes.

Run as a script by torchrun (see the `__main__` block); pytest only launches it and reads the result.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def worker(model_dir: str, data: str, out: str) -> None:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from llm2vec_plugins.training import train
    from llm2vec_plugins.training.losses import contrastive_loss

    # The full run first: Trainer/accelerate set up the gloo process group from torchrun's environment.
    result = train("simcse", model=model_dir, data=data, output_dir=out, max_steps=2, batch_size=2, max_length=16,
                   logging_steps=1, save_steps=100, progress=False)
    rank, world = dist.get_rank(), dist.get_world_size()
    # Rank r holds rows that only it knows; the loss must see every rank's rows as negatives.
    torch.manual_seed(100 + rank)
    queries = torch.randn(3, 8, requires_grad=True)
    positives = torch.randn(3, 8, requires_grad=True)
    loss = contrastive_loss(queries, positives, scale=20.0)
    everyone = [torch.empty(3, 8) for _ in range(world)]
    dist.all_gather(everyone, positives.detach())
    candidates = torch.cat(everyone)
    scores = F.normalize(queries, dim=-1) @ F.normalize(candidates, dim=-1).T * 20.0
    expected = F.cross_entropy(scores, torch.arange(3) + 3 * rank)
    loss.backward()
    report = {"rank": rank, "world": world, "loss": loss.item(), "expected": expected.item(),
              "local_grad": positives.grad is not None and bool(positives.grad.abs().sum() > 0),
              "steps": result.global_step, "final_loss": result.final_loss}
    Path(out, f"rank{rank}.json").write_text(json.dumps(report))


@pytest.mark.slow
def test_simcse_with_two_processes_uses_negatives_from_both(tiny_llama_dir, tmp_path):
    from tests.tiny_models import CORPUS

    data = tmp_path / "corpus.txt"
    data.write_text("\n".join(f"{s} {i}" for i, s in enumerate(CORPUS[:24])) + "\n")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           __file__, str(tiny_llama_dir), str(data), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    for report in reports:
        assert report["world"] == 2 and report["steps"] == 2
        assert abs(report["loss"] - report["expected"]) < 1e-5  # both ranks' rows were the candidates
        assert report["local_grad"]
    assert (out / "adapter_model.safetensors").is_file()


if __name__ == "__main__":
    worker(*sys.argv[1:4])
