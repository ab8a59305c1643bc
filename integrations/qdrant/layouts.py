"""Payload layouts: how a chunk is stored in a Qdrant point so that a given framework can read it back.

- `llm2vec`: flat and filter-friendly: text, source_id, source, chunk_index, content_hash, metadata.
- `langchain`: `page_content` + `metadata`, as `langchain_qdrant.QdrantVectorStore` reads and writes.
- `llamaindex`: LlamaIndex's node serialization (`_node_content`, `_node_type`, doc_id / ref_doc_id,
  metadata keys at top level), produced by llama_index.core itself so it stays in sync with it.

All three use Qdrant's unnamed dense vector with cosine distance: the defaults of LangChain's store,
and LlamaIndex's store detects the unnamed vector of an existing collection by itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LayoutName = Literal["llm2vec", "langchain", "llamaindex"]
# Payload field that marks a point as written by llm2vec (its value: the encoder's identity key). Only
# such points are ever skipped, replaced or pruned: other tools' points in the collection are left alone.
ENCODER_FIELD = "llm2vec_encoder"


@dataclass(frozen=True)
class ChunkRecord:
    """Everything stored about one chunk; `point_id` is derived from the other fields (see `point_id`)."""

    point_id: str
    source_id: str
    source: str
    chunk_index: int
    text: str
    content_hash: str
    metadata: dict[str, Any]
    encoder: str = ""  # key of the encoder identity that made the vector: marks the points llm2vec wrote
    tokens: Any = field(default=None, compare=False, repr=False)  # the chunk's encoder input (not stored)

    def our_fields(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "source": self.source, "chunk_index": self.chunk_index,
                "content_hash": self.content_hash, ENCODER_FIELD: self.encoder}


class PayloadLayout:
    """Builds a point payload from a chunk and reads text + metadata back from a payload."""

    name: LayoutName
    source_key: str  # payload key (dotted for nested) holding the source id: used to find a document's points
    marker_key: str  # payload key (dotted for nested) of ENCODER_FIELD

    def payload(self, record: ChunkRecord) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(text, metadata) of a stored payload; metadata includes source_id, source and chunk_index."""
        raise NotImplementedError

    def matches(self, payload: dict[str, Any]) -> bool:
        """Whether a stored payload was written with this layout."""
        raise NotImplementedError


class Llm2vecLayout(PayloadLayout):
    name = "llm2vec"
    source_key = "source_id"
    marker_key = ENCODER_FIELD

    def payload(self, record: ChunkRecord) -> dict[str, Any]:
        return {"text": record.text, **record.our_fields(), "metadata": record.metadata}

    def read(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        fields = {k: v for k, v in payload.items() if k not in ("text", "metadata")}
        return payload.get("text", ""), {**payload.get("metadata", {}), **fields}

    def matches(self, payload: dict[str, Any]) -> bool:
        return "text" in payload and "source_id" in payload and "_node_content" not in payload


class LangchainLayout(PayloadLayout):
    name = "langchain"
    source_key = "metadata.source_id"
    marker_key = f"metadata.{ENCODER_FIELD}"

    def payload(self, record: ChunkRecord) -> dict[str, Any]:
        # Our fields last: they are what idempotence relies on, a column may not shadow them.
        return {"page_content": record.text, "metadata": {**record.metadata, **record.our_fields()}}

    def read(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return payload.get("page_content", ""), dict(payload.get("metadata") or {})

    def matches(self, payload: dict[str, Any]) -> bool:
        return "page_content" in payload


class LlamaindexLayout(PayloadLayout):
    name = "llamaindex"
    source_key = "doc_id"  # what LlamaIndex's QdrantVectorStore.delete(ref_doc_id) filters on
    marker_key = ENCODER_FIELD  # node metadata lands at the payload's top level

    def payload(self, record: ChunkRecord) -> dict[str, Any]:
        try:
            from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
            from llama_index.core.vector_stores.utils import node_to_metadata_dict
        except ImportError as err:
            raise ImportError("the 'llamaindex' payload layout needs llama-index-core: "
                              "pip install 'llm2vec-plugins[llamaindex]'") from err
        node = TextNode(
            id_=record.point_id,
            text=record.text,
            metadata={**record.metadata, **record.our_fields()},
            # Our bookkeeping fields are not content: keep them out of what LlamaIndex embeds or shows the LLM.
            excluded_embed_metadata_keys=["source_id", "chunk_index", "content_hash", ENCODER_FIELD],
            excluded_llm_metadata_keys=["source_id", "chunk_index", "content_hash", ENCODER_FIELD],
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=record.source_id)},
        )
        return node_to_metadata_dict(node, remove_text=False, flat_metadata=False)

    def read(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        import json

        node = json.loads(payload["_node_content"])
        return node.get("text", ""), dict(node.get("metadata") or {})

    def matches(self, payload: dict[str, Any]) -> bool:
        return "_node_content" in payload


LAYOUTS: dict[str, PayloadLayout] = {
    layout.name: layout for layout in (Llm2vecLayout(), LangchainLayout(), LlamaindexLayout())
}


def get_layout(name: str | PayloadLayout) -> PayloadLayout:
    """The layout called `name` ('llm2vec', 'langchain' or 'llamaindex'), with a clear error otherwise."""
    if isinstance(name, PayloadLayout):
        return name
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown payload layout {name!r}; choose one of {', '.join(LAYOUTS)}") from None


def detect_layout(payload: dict[str, Any]) -> PayloadLayout | None:
    """The layout a stored payload was written with, or None if it is none of ours."""
    for layout in LAYOUTS.values():
        if layout.matches(payload):
            return layout
    return None
