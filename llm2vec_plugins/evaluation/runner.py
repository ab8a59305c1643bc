"""Run local evaluation tasks on an `LLM2Vec` encoder and collect a report that compares run to run."""
from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llm2vec_plugins.evaluation.data import RetrievalData, STSPairs
from llm2vec_plugins.evaluation.metrics import (
    cosine_similarity_pairs,
    ndcg_at_k,
    recall_at_k,
    spearman,
    top_k_by_cosine,
)
from llm2vec_plugins.evaluation.tasks import EvalTask, get_tasks

if TYPE_CHECKING:
    from llm2vec_plugins.encoder import LLM2Vec


@dataclass
class TaskResult:
    """Scores of one task; `score` is the main metric x100 (Spearman for STS, nDCG@10 for retrieval)."""

    task: str
    kind: str
    main_metric: str
    score: float
    metrics: dict[str, float]
    num_examples: int
    instruction: str
    document_instruction: str | None
    seconds: float


@dataclass
class EvaluationReport:
    """What was evaluated, how, and the scores: enough to compare two runs side by side."""

    model: str
    adapter: str | None
    settings: dict[str, Any]
    results: list[TaskResult]
    seconds: float
    started_at: str
    package_version: str
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def average(self) -> float:
        """Mean main score (x100) over the tasks."""
        return float(np.mean([r.score for r in self.results])) if self.results else float("nan")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["results"] = {r.task: asdict(r) for r in self.results}
        data["average"] = self.average
        for kind in sorted({r.kind for r in self.results}):
            data[f"average_{kind}"] = float(np.mean([r.score for r in self.results if r.kind == kind]))
        return data

    def to_table(self):
        """A rich Table: one row per task (main score, secondary metric, size, time) and the average."""
        from rich.table import Table

        title = f"{self.model}" + (f" + {self.adapter}" if self.adapter else "")
        bidirectional = self.settings.get("bidirectional")
        if bidirectional is not None:
            title += " (bidirectional)" if bidirectional else " (causal)"
        table = Table(title=title, caption=f"llm2vec-plugins {self.package_version}, {self.seconds:.0f} s")
        for column in ("task", "metric", "score", "also", "examples", "seconds"):
            table.add_column(column, justify="left" if column in ("task", "metric") else "right")
        secondary = {"cosine_pearson": "pearson", "recall_at_100": "R@100"}
        for r in self.results:
            also = " ".join(f"{label} {r.metrics[key]:.2f}" for key, label in secondary.items() if key in r.metrics)
            table.add_row(r.task, r.main_metric, f"{r.score:.2f}", also, str(r.num_examples), f"{r.seconds:.0f}")
        table.add_section()
        table.add_row("average", "", f"{self.average:.2f}", "", "", f"{self.seconds:.0f}", style="bold")
        return table

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON text; also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
        return text


def encode_texts(
    encoder: LLM2Vec, texts: Sequence[str], instruction: str = "", batch_size: int = 32,
    show_progress_bar: bool = False,
) -> np.ndarray:
    """Embed texts (each one once, however often it repeats) with an optional instruction before each."""
    unique = list(dict.fromkeys(texts))
    sentences = [[instruction, t] for t in unique] if instruction else unique
    embeddings = encoder.encode(sentences, batch_size=batch_size, show_progress_bar=show_progress_bar)
    row = {t: i for i, t in enumerate(unique)}
    return np.asarray(embeddings)[[row[t] for t in texts]]


def evaluate_sts(
    encoder: LLM2Vec, pairs: STSPairs, instruction: str = "", batch_size: int = 32, show_progress_bar: bool = False,
) -> dict[str, float]:
    """MTEB's STS score: Spearman correlation (x100) between pair cosine similarities and gold scores.

    Example:
        >>> scores = evaluate_sts(model, read_stsb("stsb-en-test.csv"), "Retrieve semantically similar text:")
        >>> scores["cosine_spearman"]  # x100, like MTEB's leaderboard
    """
    embeddings = encode_texts(encoder, pairs.sentences1 + pairs.sentences2, instruction, batch_size,
                              show_progress_bar)
    cosine = cosine_similarity_pairs(embeddings[: len(pairs)], embeddings[len(pairs):])
    from scipy.stats import pearsonr

    return {
        "cosine_spearman": 100 * spearman(cosine, pairs.scores),
        "cosine_pearson": 100 * float(pearsonr(cosine, pairs.scores)[0]),
    }


def evaluate_retrieval(
    encoder: LLM2Vec, data: RetrievalData, instruction: str = "", document_instruction: str = "",
    batch_size: int = 32, show_progress_bar: bool = False, k_values: Sequence[int] = (1, 10, 100),
) -> dict[str, float]:
    """MTEB's retrieval scores (x100): documents ranked by cosine, nDCG@k with graded gains, recall@k.

    Averaged over the queries that have at least one relevant document.
    """
    query_ids = [q for q in data.queries if any(g > 0 for g in data.qrels.get(q, {}).values())]
    if not query_ids:
        raise ValueError("no query has a relevant document: nothing to evaluate")
    doc_ids = list(data.corpus)
    docs = encode_texts(encoder, [data.corpus[d] for d in doc_ids], document_instruction, batch_size,
                        show_progress_bar)
    queries = encode_texts(encoder, [data.queries[q] for q in query_ids], instruction, batch_size, show_progress_bar)
    top = top_k_by_cosine(queries, docs, max(k_values))
    rankings = {q: [doc_ids[i] for i in row] for q, row in zip(query_ids, top)}
    scores: dict[str, float] = {}
    for k in k_values:
        scores[f"ndcg_at_{k}"] = 100 * float(np.mean([ndcg_at_k(rankings[q], data.qrels[q], k) for q in query_ids]))
    for k in k_values:
        scores[f"recall_at_{k}"] = 100 * float(np.mean([recall_at_k(rankings[q], data.qrels[q], k) for q in query_ids]))
    return scores


def run_task(
    encoder: LLM2Vec, task: EvalTask, data_dir: str | os.PathLike, *, instruction: str | None = None,
    document_instruction: str | None = None, limit: int | None = None, batch_size: int = 32,
    show_progress_bar: bool = False,
) -> TaskResult:
    """Load one task's files from `data_dir` and score the encoder; instructions default to the task's."""
    instruction = task.instruction if instruction is None else instruction
    document_instruction = task.document_instruction if document_instruction is None else document_instruction
    start = time.perf_counter()
    data = task.load(Path(data_dir)).subset(limit)
    if task.kind == "sts":
        metrics = evaluate_sts(encoder, data, instruction, batch_size, show_progress_bar)
        size = len(data)
    else:
        metrics = evaluate_retrieval(encoder, data, instruction, document_instruction, batch_size, show_progress_bar)
        size = len(data.queries)
    return TaskResult(
        task=task.name, kind=task.kind, main_metric=task.main_metric, score=metrics[task.main_metric],
        metrics=metrics, num_examples=size, instruction=instruction,
        document_instruction=document_instruction if task.kind == "retrieval" else None,
        seconds=round(time.perf_counter() - start, 2),
    )


def evaluate(
    encoder: LLM2Vec,
    tasks: str | Sequence[str],
    data_dir: str | os.PathLike,
    *,
    instructions: Mapping[str, str] | None = None,
    document_instructions: Mapping[str, str] | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    show_progress_bar: bool = False,
    model_name: str | None = None,
    adapter: str | None = None,
    settings: Mapping[str, Any] | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
) -> EvaluationReport:
    """Score an encoder on local tasks (see `TASKS`) read from `data_dir`; returns an `EvaluationReport`.

    `instructions` overrides the per-task instruction ({task name: text}, "" for none); `limit` keeps N evenly
    spaced pairs / queries of each task (for quick runs; the retrieval corpus stays whole).
    `on_result(TaskResult)` is called after each task, e.g. to print progress.

    Example:
        >>> from llm2vec_plugins import LLM2Vec
        >>> from llm2vec_plugins.evaluation import evaluate
        >>> model = LLM2Vec.from_pretrained("smollm2-135m-llm2vec")
        >>> report = evaluate(model, "sts-b,sick-r,cranfield", "../shared/data")
        >>> report.average, report.to_json("results.json")
    """
    selected = get_tasks(tasks if isinstance(tasks, str) else list(tasks))
    if limit is not None and limit < 2:
        raise ValueError(f"limit must be >= 2 (Spearman needs two pairs), got {limit}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir} (expected the benchmark folder with "
                                f"sts/ and retrieval/ inside, e.g. ../shared/data)")
    instructions = _per_task(instructions or {})
    document_instructions = _per_task(document_instructions or {})
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    results = []
    for task in selected:
        result = run_task(
            encoder, task, data_dir, instruction=instructions.get(task.name),
            document_instruction=document_instructions.get(task.name), limit=limit, batch_size=batch_size,
            show_progress_bar=show_progress_bar,
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    from llm2vec_plugins import __version__

    return EvaluationReport(
        model=model_name or str(getattr(encoder.model.config, "_name_or_path", "") or "unknown"),
        adapter=adapter,
        settings={**describe_encoder(encoder), "batch_size": batch_size, "limit": limit,
                  "data_dir": str(data_dir), **(settings or {})},
        results=results,
        seconds=round(time.perf_counter() - start, 2),
        started_at=started_at,
        package_version=__version__,
        environment=_environment(),
    )


def describe_encoder(encoder: LLM2Vec) -> dict[str, Any]:
    """The encoder settings that change scores (pooling, lengths, attention direction, dtype, device, depth)."""
    config = encoder.model.config
    is_causal = getattr(config, "is_causal", None)
    return {
        "pooling_mode": encoder.pooling_mode,
        "max_length": encoder.max_length,
        "doc_max_length": encoder.doc_max_length,
        "skip_instruction": encoder.skip_instruction,
        "bidirectional": None if is_causal is None else not is_causal,
        "dtype": str(next(encoder.model.parameters()).dtype).removeprefix("torch."),
        "device": str(encoder.device),
        "embedding_dim": encoder.embedding_dim,
        "num_layers": encoder.identity["num_layers"],
    }


def _per_task(overrides: Mapping[str, str]) -> dict[str, str]:
    # Resolve aliases ("STSBenchmark" -> "sts-b") and groups ("sts"), and reject typos instead of
    # silently ignoring them. Later keys win, so "sts=..., sts-b=..." gives STS-B its own text.
    return {task.name: text for name, text in overrides.items() for task in get_tasks([name])}


def _environment() -> dict[str, str]:
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "machine": platform.machine()}
