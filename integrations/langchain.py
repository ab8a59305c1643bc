"""LangChain `Embeddings` over the shared LLM2Vec encoder (`pip install 'llm2vec-plugins[langchain]'`)."""
from __future__ import annotations

from langchain_core.embeddings import Embeddings
from pydantic import PositiveInt

from llm2vec_plugins.shared import EncoderOptions


class LLM2VecEmbeddings(EncoderOptions, Embeddings):
    """LangChain embeddings from a decoder LLM turned encoder with LLM2Vec; runs locally, offline.

    Queries are embedded under `query_instruction` (attended to, not pooled), documents as plain
    text. Instances with the same model options share one loaded model, loaded on first use.
    Concurrent `aembed_*` calls are encoded together in one batch.

    Example:
        >>> from langchain_qdrant import QdrantVectorStore
        >>> from llm2vec_plugins import LLM2VecEmbeddings
        >>> store = QdrantVectorStore.from_texts(
        ...     ["LoRA adds low-rank matrices to frozen weights.", "Paris is the capital of France."],
        ...     LLM2VecEmbeddings(), location=":memory:", collection_name="docs")
        >>> store.similarity_search("What does LoRA change?", k=1)[0].page_content
        'LoRA adds low-rank matrices to frozen weights.'
    """

    batch_size: PositiveInt = 32
    """Most texts per forward pass (texts are length-sorted, so batches carry little padding)."""
    show_progress: bool = False
    """Show a progress bar while embedding documents."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (under `document_instruction`, if set); `[]` for `[]`.

        Raises TypeError for a non-list or a non-str item and ValueError for an empty string,
        naming its index.
        """
        return self._embed(texts, "document", self.batch_size, self.show_progress)

    def embed_query(self, text: str) -> list[float]:
        """Embed a query under `query_instruction`."""
        return self._embed([text], "query", self.batch_size)[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async `embed_documents`; concurrent calls share one encode call, off the event loop."""
        return await self._aembed(texts, "document", self.batch_size, self.show_progress)

    async def aembed_query(self, text: str) -> list[float]:
        """Async `embed_query`; concurrent calls share one encode call, off the event loop."""
        return (await self._aembed([text], "query", self.batch_size))[0]
