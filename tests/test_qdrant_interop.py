"""LangChain's and LlamaIndex's own Qdrant vector stores retrieve from collections written by `llm2vec index`."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("qdrant_client")

from typer.testing import CliRunner  # noqa: E402

from llm2vec_plugins import LLM2Vec  # noqa: E402
from llm2vec_plugins.cli.main import app  # noqa: E402
from llm2vec_plugins.integrations.qdrant import connect, search  # noqa: E402

TEXTS = ["The invoice is in the billing tab.", "Reset your password in settings.", "Cats sleep most of the day."]


def _index_with_cli(tiny_llama_dir, tmp_path, layout):
    corpus = tmp_path / "faq.jsonl"
    corpus.write_text("".join(json.dumps({"text": t, "topic": f"t{i}"}) + "\n" for i, t in enumerate(TEXTS)))
    store = tmp_path / "store"
    result = CliRunner().invoke(app, ["index", str(corpus), "--collection", "docs", "--qdrant-path", str(store),
                                      "--model", str(tiny_llama_dir), "--payload-layout", layout])
    assert result.exit_code == 0, result.output
    return connect(path=store)


def test_langchain_qdrant_vector_store_retrieves_from_an_indexed_collection(tiny_llama_dir, tmp_path):
    from langchain_qdrant import QdrantVectorStore

    from llm2vec_plugins.integrations.langchain import LLM2VecEmbeddings

    client = _index_with_cli(tiny_llama_dir, tmp_path, "langchain")
    try:
        plain = QdrantVectorStore(client, "docs", embedding=LLM2VecEmbeddings(model=tiny_llama_dir,
                                                                              query_instruction=None))
        doc, score = plain.similarity_search_with_score(TEXTS[1], k=1)[0]
        assert doc.page_content == TEXTS[1] and score == pytest.approx(1.0, abs=1e-4)
        assert doc.metadata["topic"] == "t1" and doc.metadata["chunk_index"] == 0
        # With the default query instruction LangChain ranks exactly as `llm2vec search` does.
        store = QdrantVectorStore(client, "docs", embedding=LLM2VecEmbeddings(model=tiny_llama_dir))
        ours = search(LLM2Vec.from_pretrained(tiny_llama_dir), client, "docs", "where is my invoice", k=3)
        theirs = store.similarity_search_with_score("where is my invoice", k=3)
        assert [d.metadata["_id"] for d, _ in theirs] == [h.id for h in ours]
        assert [s for _, s in theirs] == pytest.approx([h.score for h in ours], abs=1e-4)
    finally:
        client.close()


def test_llamaindex_qdrant_vector_store_retrieves_from_an_indexed_collection(tiny_llama_dir, tmp_path):
    pytest.importorskip("llama_index.vector_stores.qdrant")
    from llama_index.core import VectorStoreIndex
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    from llm2vec_plugins.integrations.llama_index import LLM2VecEmbedding

    client = _index_with_cli(tiny_llama_dir, tmp_path, "llamaindex")
    try:
        store = QdrantVectorStore(client=client, collection_name="docs")
        plain = VectorStoreIndex.from_vector_store(
            store, embed_model=LLM2VecEmbedding(model=tiny_llama_dir, query_instruction=None))
        node = plain.as_retriever(similarity_top_k=1).retrieve(TEXTS[2])[0]
        assert node.text == TEXTS[2] and node.score == pytest.approx(1.0, abs=1e-4)
        assert node.metadata["topic"] == "t2"
        assert node.node.ref_doc_id.endswith("faq.jsonl#3")
        index = VectorStoreIndex.from_vector_store(store, embed_model=LLM2VecEmbedding(model=tiny_llama_dir))
        theirs = index.as_retriever(similarity_top_k=3).retrieve("where is my invoice")
        ours = search(LLM2Vec.from_pretrained(tiny_llama_dir), client, "docs", "where is my invoice", k=3)
        assert [n.node.node_id for n in theirs] == [h.id for h in ours]
        # LlamaIndex can also delete a document that `llm2vec index` wrote, by its source id.
        store.delete(node.node.ref_doc_id)
        assert client.count("docs").count == len(TEXTS) - 1
    finally:
        client.close()
