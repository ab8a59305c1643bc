"""Qdrant ingestion and search with LLM2Vec encoders (the Python API under `llm2vec index` / `llm2vec search`).

Example:
    >>> from llm2vec_plugins import LLM2Vec
    >>> from llm2vec_plugins.integrations.qdrant import QdrantIngestor, connect, search
    >>> model = LLM2Vec.from_pretrained("smollm2-135m-llm2vec")
    >>> client = connect(path="./qdrant_data")          # or connect(url="http://host:6333", api_key=...)
    >>> QdrantIngestor(model, client, "docs", layout="langchain").ingest(["docs/"])
    >>> search(model, client, "docs", "what is LoRA?", k=5)[0].text
"""
from llm2vec_plugins.integrations.qdrant.ingest import (
    IngestReport,
    QdrantIngestor,
    SearchHit,
    chunk_records,
    search,
)
from llm2vec_plugins.integrations.qdrant.layouts import LAYOUTS, ChunkRecord, PayloadLayout, get_layout
from llm2vec_plugins.integrations.qdrant.store import (
    CollectionMismatchError,
    connect,
    content_hash,
    ensure_collection,
    point_id,
)

__all__ = [
    "LAYOUTS",
    "ChunkRecord",
    "CollectionMismatchError",
    "IngestReport",
    "PayloadLayout",
    "QdrantIngestor",
    "SearchHit",
    "chunk_records",
    "connect",
    "content_hash",
    "ensure_collection",
    "get_layout",
    "point_id",
    "search",
]
