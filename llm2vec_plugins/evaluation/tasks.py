"""The local evaluation tasks: name -> which files to read, what kind of task, which instructions (paper's)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llm2vec_plugins.evaluation.data import (
    RetrievalData,
    STSPairs,
    read_cranfield,
    read_semeval_sts_year,
    read_sick_relatedness,
    read_stsb,
)
from llm2vec_plugins.evaluation.instructions import MTEB_INSTRUCTIONS, STS_INSTRUCTION

TaskKind = Literal["sts", "retrieval"]

# Cranfield is not an MTEB task, so the paper has no instruction for it; this one is written the way the
# paper's retrieval instructions are (task domain + what to retrieve), e.g. SciFact's or TRECCOVID's.
CRANFIELD_INSTRUCTION = "Given a question on aerodynamics, retrieve abstracts of papers that answer the question:"


@dataclass(frozen=True)
class EvalTask:
    """One evaluation task on local files.

    `instruction` goes on both texts of an STS pair and on the queries of a retrieval task;
    `document_instruction` goes on retrieval documents (empty, as in the paper).
    """

    name: str
    kind: TaskKind
    mteb_name: str | None
    description: str
    load: Callable[[Path], STSPairs | RetrievalData]
    instruction: str
    document_instruction: str = ""

    @property
    def main_metric(self) -> str:
        return "cosine_spearman" if self.kind == "sts" else "ndcg_at_10"


def _sts(name: str, mteb_name: str, description: str, load: Callable[[Path], STSPairs]) -> EvalTask:
    return EvalTask(name, "sts", mteb_name, description, load, MTEB_INSTRUCTIONS.get(mteb_name, STS_INSTRUCTION))


def _semeval(year: int) -> EvalTask:
    return _sts(f"sts{year % 100}", f"STS{year % 100}", f"SemEval STS {year} test sets, scored pairs",
                lambda data_dir: read_semeval_sts_year(data_dir / "sts" / "semeval" / str(year)))


TASKS: dict[str, EvalTask] = {
    task.name: task
    for task in (
        _sts("sts-b", "STSBenchmark", "STS Benchmark (English) test split",
             lambda data_dir: read_stsb(data_dir / "sts" / "stsb" / "stsb-en-test.csv")),
        *(_semeval(year) for year in range(2012, 2017)),
        _sts("sick-r", "SICK-R", "SICK test split, relatedness score",
             lambda data_dir: read_sick_relatedness(data_dir / "sts" / "sick2014" / "SICK_test_annotated.txt")),
        EvalTask("cranfield", "retrieval", None, "Cranfield collection, 225 queries over 1,400 abstracts",
                 lambda data_dir: read_cranfield(data_dir / "retrieval" / "cranfield"), CRANFIELD_INSTRUCTION),
    )
}

# Short names for `--tasks`: every STS set, every task.
TASK_GROUPS: dict[str, tuple[str, ...]] = {
    "sts": tuple(name for name, task in TASKS.items() if task.kind == "sts"),
    "all": tuple(TASKS),
}


class UnknownTaskError(ValueError):
    """A task name that is not one of `TASKS` (the message lists the valid ones)."""


def get_tasks(names: str | list[str] | tuple[str, ...]) -> list[EvalTask]:
    """Tasks by name (case-insensitive; also MTEB names like "STSBenchmark" and the groups "sts" / "all").

    Accepts a list or one comma-separated string; keeps the given order and drops duplicates.

    Example:
        >>> [t.name for t in get_tasks("sts-b,SICK-R,cranfield")]
        ['sts-b', 'sick-r', 'cranfield']
    """
    if isinstance(names, str):
        names = names.split(",")
    by_alias = {name: (name,) for name in TASKS}
    by_alias |= {task.mteb_name.lower(): (name,) for name, task in TASKS.items() if task.mteb_name}
    by_alias |= TASK_GROUPS
    selected: list[str] = []
    for raw in names:
        key = raw.strip().lower()
        if not key:
            continue
        if key not in by_alias:
            raise UnknownTaskError(
                f"unknown task {raw.strip()!r}; valid tasks: {', '.join(TASKS)} "
                f"(or groups: {', '.join(TASK_GROUPS)})"
            )
        selected.extend(n for n in by_alias[key] if n not in selected)
    if not selected:
        raise UnknownTaskError(f"no task given; valid tasks: {', '.join(TASKS)}")
    return [TASKS[n] for n in selected]
