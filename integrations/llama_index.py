"""LlamaIndex `BaseEmbedding` over the shared LLM2Vec encoder (`pip install 'llm2vec-plugins[llamaindex]'`)."""
from __future__ import annotations

import os

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import model_validator

from llm2vec_plugins.shared import EncoderOptions


class LLM2VecEmbedding(EncoderOptions, BaseEmbedding):
    """LlamaIndex embeddings from a decoder LLM turned encoder with LLM2Vec; runs locally, offline.

    Takes the same options as `LLM2VecEmbeddings` (LangChain) and shares its loaded model when they
    match. Batching is LlamaIndex's: `embed_batch_size` texts per encode call, and a progress bar
    when the caller passes `show_progress=True` (e.g. `VectorStoreIndex(..., show_progress=True)`).

    Example:
        >>> from llama_index.core import Document, VectorStoreIndex
        >>> from llm2vec_plugins.integrations.llama_index import LLM2VecEmbedding
        >>> index = VectorStoreIndex.from_documents(
        ...     [Document(text="LoRA adds low-rank matrices to frozen weights."),
        ...      Document(text="Paris is the capital of France.")], embed_model=LLM2VecEmbedding())
        >>> index.as_retriever(similarity_top_k=1).retrieve("What does LoRA change?")[0].text
        'LoRA adds low-rank matrices to frozen weights.'
    """

    @classmethod
    def class_name(cls) -> str:
        return "LLM2VecEmbedding"

    @model_validator(mode="after")
    def _name_after_model(self) -> LLM2VecEmbedding:
        # LlamaIndex reports `model_name` in its events and serialization.
        if self.model_name == "unknown":
            self.model_name = os.fspath(self.model)
        return self

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([query], "query", self.embed_batch_size)[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aembed([query], "query", self.embed_batch_size))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([text], "document", self.embed_batch_size)[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aembed([text], "document", self.embed_batch_size))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed(texts, "document", self.embed_batch_size)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._aembed(texts, "document", self.embed_batch_size)
