"""Adapter that lets the `mteb` package (extra `mteb`, v2 API) evaluate an `LLM2Vec` encoder on any MTEB task.

Instructions follow the LLM2Vec paper: the paper's per-task instruction (`MTEB_INSTRUCTIONS`) on queries and
on both texts of symmetric tasks, none on retrieval / reranking documents; tasks missing from the table fall
back to MTEB's own task prompt, rewritten to end with ":" as LLM2Vec expects.

Example (online: MTEB downloads the task data from the Hugging Face hub):
    >>> from llm2vec_plugins import LLM2Vec
    >>> from llm2vec_plugins.evaluation.mteb import evaluate_mteb
    >>> encoder = LLM2Vec.from_pretrained("smollm2-135m-llm2vec")
    >>> result = evaluate_mteb(encoder, ["STS12", "SciFact"])
    >>> [(r.task_name, r.get_score()) for r in result.task_results]
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

try:
    import mteb
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.models.model_meta import ModelMeta, ScoringFunction
    from mteb.types import PromptType
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "llm2vec_plugins.evaluation.mteb needs the mteb package (v2): pip install 'llm2vec-plugins[mteb]'"
    ) from err

from llm2vec_plugins.evaluation.instructions import MTEB_INSTRUCTIONS, as_llm2vec_instruction

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

    from llm2vec_plugins.encoder import LLM2Vec


class LLM2VecMTEBEncoder(AbsEncoder):
    """An `LLM2Vec` encoder seen by MTEB as a model (implements mteb's `EncoderProtocol`).

    Args:
        encoder: the loaded encoder; all encoding is delegated to `encoder.encode`.
        model_name: name MTEB stores results under ("org/name" form).
        revision: revision string stored with the results (e.g. a git hash or a training run id).
        instructions: {MTEB task name: instruction} overriding the paper's table for queries / symmetric texts.
        document_instructions: {MTEB task name: instruction} for retrieval documents (default: none).

    Example:
        >>> model = LLM2VecMTEBEncoder(LLM2Vec.from_pretrained("smollm2-135m-llm2vec"))
        >>> mteb.evaluate(model, mteb.get_tasks(tasks=["STSBenchmark"]))
    """

    def __init__(
        self,
        encoder: LLM2Vec,
        model_name: str = "llm2vec-plugins/encoder",
        revision: str | None = None,
        instructions: Mapping[str, str] | None = None,
        document_instructions: Mapping[str, str] | None = None,
    ) -> None:
        self.model = encoder
        self.instructions = dict(instructions or {})
        self.document_instructions = dict(document_instructions or {})
        n_parameters = sum(p.numel() for p in encoder.model.parameters())
        self.mteb_model_meta = ModelMeta.create_empty(overwrites=dict(
            name=model_name,
            revision=revision or "no_revision_available",
            embed_dim=encoder.embedding_dim,
            max_tokens=encoder.max_length,
            n_parameters=n_parameters,
            similarity_fn_name=ScoringFunction.COSINE,
            use_instructions=True,
            framework=["PyTorch"],
        ))

    def instruction_for(self, task_metadata, prompt_type: PromptType | None) -> str:
        """The instruction put before each text of this task and side (query / document / symmetric)."""
        name = task_metadata.name
        if prompt_type == PromptType.document:
            return as_llm2vec_instruction(self.document_instructions.get(name, ""))
        if name in self.instructions:
            return as_llm2vec_instruction(self.instructions[name])
        if name in MTEB_INSTRUCTIONS:
            return MTEB_INSTRUCTIONS[name]
        return as_llm2vec_instruction(self.get_instruction(task_metadata, prompt_type) or "")

    def encode(
        self,
        inputs: DataLoader,
        *,
        task_metadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Embed every text of MTEB's batches, with this task's instruction (see `instruction_for`)."""
        instruction = self.instruction_for(task_metadata, prompt_type)
        texts = [text for batch in inputs for text in batch["text"]]
        sentences = [[instruction, t] for t in texts] if instruction else texts
        return self.model.encode(
            sentences,
            batch_size=kwargs.get("batch_size", 32),
            show_progress_bar=kwargs.get("show_progress_bar", False),
        )


def evaluate_mteb(
    encoder: LLM2Vec,
    tasks: Iterable[str | mteb.AbsTask],
    *,
    model_name: str = "llm2vec-plugins/encoder",
    revision: str | None = None,
    instructions: Mapping[str, str] | None = None,
    batch_size: int = 32,
    cache: Any = None,
    **evaluate_kwargs: Any,
) -> mteb.results.ModelResult:
    """Run MTEB tasks (names or task objects) on an encoder with the paper's instructions.

    `cache=None` (default) keeps nothing on disk; pass an `mteb.ResultCache` to store and reuse results.
    Extra keyword arguments go to `mteb.evaluate`.
    """
    objects = [mteb.get_task(t) if isinstance(t, str) else t for t in tasks]
    model = LLM2VecMTEBEncoder(encoder, model_name, revision, instructions)
    return mteb.evaluate(model, objects, encode_kwargs={"batch_size": batch_size}, cache=cache, **evaluate_kwargs)
