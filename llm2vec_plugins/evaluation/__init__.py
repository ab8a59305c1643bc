"""MTEB-style evaluation: local STS / retrieval tasks (`evaluate`) and an adapter for the `mteb` package.

Example:
    >>> from llm2vec_plugins import LLM2Vec
    >>> from llm2vec_plugins.evaluation import evaluate
    >>> report = evaluate(LLM2Vec.from_pretrained("smollm2-135m-llm2vec"), "sts-b,cranfield", "../shared/data")
    >>> print(report.average)

The `mteb` adapter lives in `llm2vec_plugins.evaluation.mteb` (needs the `mteb` extra).
"""
from llm2vec_plugins.evaluation.data import (
    DataFileError,
    RetrievalData,
    STSPairs,
    cranfield_gain,
    read_cranfield,
    read_semeval_sts_year,
    read_sick_relatedness,
    read_stsb,
)
from llm2vec_plugins.evaluation.instructions import MTEB_INSTRUCTIONS, STS_INSTRUCTION, as_llm2vec_instruction
from llm2vec_plugins.evaluation.metrics import cosine_similarity_pairs, ndcg_at_k, recall_at_k, spearman
from llm2vec_plugins.evaluation.runner import (
    EvaluationReport,
    TaskResult,
    evaluate,
    evaluate_retrieval,
    evaluate_sts,
    run_task,
)
from llm2vec_plugins.evaluation.tasks import TASKS, EvalTask, UnknownTaskError, get_tasks

__all__ = [
    "MTEB_INSTRUCTIONS",
    "STS_INSTRUCTION",
    "TASKS",
    "DataFileError",
    "EvalTask",
    "EvaluationReport",
    "RetrievalData",
    "STSPairs",
    "TaskResult",
    "UnknownTaskError",
    "as_llm2vec_instruction",
    "cosine_similarity_pairs",
    "cranfield_gain",
    "evaluate",
    "evaluate_retrieval",
    "evaluate_sts",
    "get_tasks",
    "ndcg_at_k",
    "read_cranfield",
    "read_semeval_sts_year",
    "read_sick_relatedness",
    "read_stsb",
    "recall_at_k",
    "run_task",
    "spearman",
]
