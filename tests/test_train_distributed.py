"""Two processes under `torchrun --nproc_per_node 2` (CPU, gloo): the contrastive loss and the parameter
gradients are those of one process on the combined batch, and each global batch comes from one source.

torchrun runs this file as a script (see the `__main__` block) once per module; the tests read its reports.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
QUERIES_PER_RANK = (3, 5)  # unequal on purpose: processes may hold different row counts
EXAMPLES_PER_RANK = (2, 4)  # rows of the pairs file each process trains on in the Trainer check


def _rank_rows(sizes: tuple[int, ...], rank: int) -> slice:
    return slice(sum(sizes[:rank]), sum(sizes[: rank + 1]))


def small_encoder_step(rows: slice) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss and gradients of one contrastive step of a small MLP encoder on `rows` of a fixed batch
    (queries, positives, hard negatives); DDP-wrapped when a process group is set up."""
    import torch.distributed as dist

    from llm2vec_plugins.training.losses import contrastive_loss

    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 8))
    model = nn.parallel.DistributedDataParallel(encoder) if dist.is_initialized() else encoder
    generator = torch.Generator().manual_seed(1)
    queries, positives, negatives = (torch.randn(sum(QUERIES_PER_RANK), 8, generator=generator)[rows]
                                     for _ in range(3))
    embeddings = model(torch.cat([queries, positives, negatives]))  # one forward, as the trainer does
    loss = contrastive_loss(*embeddings.split(len(queries)), scale=20.0)
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in encoder.named_parameters()}


def worker(model_dir: str, data: str, pairs: str, out: str) -> None:
    import torch.distributed as dist

    from llm2vec_plugins.training import train
    from llm2vec_plugins.training.data import read_pairs
    from llm2vec_plugins.training.supervised import SupervisedTrainer
    from llm2vec_plugins.training.trainer import training_arguments
    from tests.test_train import trainer_gradients

    # The full run first: Trainer/accelerate set up the gloo process group from torchrun's environment.
    result = train("simcse", model=model_dir, data=data, output_dir=out, max_steps=2, batch_size=2, max_length=16,
                   logging_steps=1, save_steps=100, progress=False)
    rank, world = dist.get_rank(), dist.get_world_size()
    report = {"rank": rank, "world": world, "steps": result.global_step, "final_loss": result.final_loss}
    report["small_loss"], report["small_gradients"] = small_encoder_step(_rank_rows(QUERIES_PER_RANK, rank))
    rows = _rank_rows(EXAMPLES_PER_RANK, rank)
    report["trainer_gradients"] = {chunk: trainer_gradients(model_dir, pairs, out, rows, chunk) for chunk in (None, 2)}
    # The supervised data loader as Trainer builds it (accelerate shards it); the collator keeps the rows' ids.
    examples, _ = read_pairs(pairs)
    trainer = SupervisedTrainer(model=nn.Linear(1, 1), args=training_arguments(train_config(pairs, out)),
                                train_dataset=examples, parts=None, settings=None,
                                data_collator=lambda batch: {"rows": [(e.source, e.query) for e in batch]})
    report["batches"] = [batch["rows"] for batch in trainer.get_train_dataloader()]
    torch.save(report, Path(out, f"rank{rank}.pt"))


def train_config(pairs: str, out: str):
    from llm2vec_plugins.training import build_config

    return build_config("supervised", model="unused", data=pairs, output_dir=out, batch_size=2, progress=False)


@pytest.fixture(scope="module")
def two_processes(tiny_llama_dir, tmp_path_factory) -> list[dict]:
    from tests.tiny_models import CORPUS

    tmp = tmp_path_factory.mktemp("two-processes")
    data = tmp / "corpus.txt"
    data.write_text("\n".join(f"{s} {i}" for i, s in enumerate(CORPUS[:24])) + "\n")
    pairs = tmp / "pairs.jsonl"
    sources = ["a"] * 10 + ["b"] * 8 + ["c"] * 3  # 4-row global batches: a 2, b 2, c none
    pairs.write_text("\n".join(json.dumps({"query": f"which animal number {i}?", "positive": f"animal {i} is a fox",
                                           "negative": f"plant {i} is a tree", "instruction": "Retrieve the answer:",
                                           "dataset": source}) for i, source in enumerate(sources)) + "\n")
    out = tmp / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    # --standalone picks a free port, so concurrent test runs on one machine do not collide.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(tiny_llama_dir), str(data), str(pairs), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for report in reports:
        report["out"], report["pairs"] = out, pairs
    return reports


@pytest.mark.slow
def test_simcse_trains_with_two_processes(two_processes):
    for report in two_processes:
        assert report["world"] == 2 and report["steps"] == 2
        assert torch.isfinite(torch.tensor(report["final_loss"]))
    assert (two_processes[0]["out"] / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_two_process_loss_and_gradients_equal_one_process_on_the_combined_batch(two_processes):
    from tests.test_train import assert_close_to_scale, assert_gradients_close

    loss, gradients = small_encoder_step(slice(None))  # no process group here: one process, every row
    for report in two_processes:
        assert_close_to_scale(torch.tensor(report["small_loss"]), torch.tensor(loss), msg="loss")
        assert_gradients_close(report["small_gradients"], gradients)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [None, 2])
def test_two_process_trainer_step_equals_one_process_on_the_combined_batch(two_processes, tiny_llama_dir,
                                                                           tmp_path, chunk):
    from tests.test_train import assert_gradients_close, trainer_gradients

    pairs = two_processes[0]["pairs"]
    expected = trainer_gradients(tiny_llama_dir, pairs, tmp_path, slice(0, sum(EXAMPLES_PER_RANK)), chunk=None)
    for report in two_processes:
        assert_gradients_close(report["trainer_gradients"][chunk], expected)


@pytest.mark.slow
def test_each_step_of_two_processes_trains_on_one_source(two_processes):
    first, second = (report["batches"] for report in two_processes)
    assert len(first) == len(second) == 4
    for step, (mine, theirs) in enumerate(zip(first, second)):
        assert len(mine) == len(theirs) == 2 and not set(mine) & set(theirs)
        assert len({source for source, _ in mine + theirs}) == 1, f"step {step} mixes sources"


if __name__ == "__main__":
    worker(*sys.argv[1:5])
