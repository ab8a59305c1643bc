"""LLM2VecEmbedding (LlamaIndex): options shared with the LangChain adapter, LlamaIndex batching and
progress, async, bad input, and retrieval in a real VectorStoreIndex (in memory and over Qdrant)."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode

from llm2vec_plugins.integrations.langchain import LLM2VecEmbeddings
from llm2vec_plugins.integrations.llama_index import LLM2VecEmbedding
from llm2vec_plugins.shared import EncoderOptions
from tests.spies import count_encode_calls

TEXTS = ["LoRA adds low-rank matrices to frozen weights.", "Paris is the capital of France.",
         "Two dogs run in a field.", "The recipe needs two eggs and a cup of milk."]


@pytest.fixture
def embed_model(tiny_llama_dir) -> LLM2VecEmbedding:
    # A random tiny model has no semantics: retrieval tests look a node up by its own text, so
    # queries carry no instruction here (the instruction path is tested separately).
    return LLM2VecEmbedding(model=str(tiny_llama_dir), query_instruction=None)


# --- options ---------------------------------------------------------------------------------
def test_accepts_the_same_model_options_as_the_langchain_adapter():
    shared = set(EncoderOptions.model_fields)
    assert shared <= set(LLM2VecEmbedding.model_fields)
    assert shared <= set(LLM2VecEmbeddings.model_fields)


def test_misspelt_option_is_rejected():
    with pytest.raises(ValueError, match="query_instructions"):
        LLM2VecEmbedding(query_instructions="x")


def test_model_name_reports_the_model_and_loading_is_lazy(tiny_llama_dir):
    embed_model = LLM2VecEmbedding(model=tiny_llama_dir)
    assert embed_model.model_name == str(tiny_llama_dir)
    assert embed_model._encoder is None
    assert LLM2VecEmbedding().model_name == "smollm2-135m-llm2vec"


def test_serializes_and_loads_back_with_llama_index(tiny_llama_dir):
    embed_model = LLM2VecEmbedding(model=tiny_llama_dir, max_length=64, embed_batch_size=4)
    loaded = LLM2VecEmbedding.from_json(embed_model.to_json())
    assert loaded.model == str(tiny_llama_dir) and loaded.max_length == 64 and loaded.embed_batch_size == 4


def test_shares_one_loaded_model_with_the_langchain_adapter(tiny_llama_dir, embed_model):
    langchain = LLM2VecEmbeddings(model=str(tiny_llama_dir))
    assert embed_model.encoder is langchain.encoder
    np.testing.assert_allclose(embed_model.get_text_embedding("a cat"), langchain.embed_documents(["a cat"])[0])


def test_query_and_text_embeddings_match_the_langchain_adapter(tiny_llama_dir):
    llama = LLM2VecEmbedding(model=str(tiny_llama_dir), document_instruction="Represent the passage:")
    langchain = LLM2VecEmbeddings(model=str(tiny_llama_dir), document_instruction="Represent the passage:")
    np.testing.assert_allclose(llama.get_query_embedding("a cat"), langchain.embed_query("a cat"), rtol=1e-5)
    np.testing.assert_allclose(llama.get_text_embedding_batch(["a cat", "a dog"]),
                               langchain.embed_documents(["a cat", "a dog"]), rtol=1e-5)


# --- batching and progress ---------------------------------------------------------------------
def test_text_batches_follow_embed_batch_size(tiny_llama_dir, monkeypatch):
    embed_model = LLM2VecEmbedding(model=str(tiny_llama_dir), embed_batch_size=2)
    calls = count_encode_calls(monkeypatch, embed_model.encoder)
    embeddings = embed_model.get_text_embedding_batch(TEXTS + ["one more"])
    assert calls == [2, 2, 1]  # one encode call per LlamaIndex batch, never one per text
    assert len(embeddings) == 5


def test_index_progress_bar_is_llama_index_own(embed_model, capsys):
    VectorStoreIndex([TextNode(text=t) for t in TEXTS], embed_model=embed_model, show_progress=True)
    assert "Generating embeddings" in capsys.readouterr().err


# --- retrieval in a real index ---------------------------------------------------------------------
def test_vector_store_index_retrieves_the_relevant_node(embed_model):
    index = VectorStoreIndex([TextNode(text=t) for t in TEXTS], embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=1)
    for text in TEXTS:
        assert retriever.retrieve(text)[0].node.get_content() == text


async def test_async_index_build_and_retrieval(embed_model):
    index = VectorStoreIndex([TextNode(text=t) for t in TEXTS], embed_model=embed_model, use_async=True)
    nodes = await index.as_retriever(similarity_top_k=1).aretrieve(TEXTS[2])
    assert nodes[0].node.get_content() == TEXTS[2]


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect")  # embedded Qdrant's note, harmless
def test_qdrant_vector_store_index_retrieves_the_relevant_document(embed_model):
    import qdrant_client
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    store = QdrantVectorStore(client=qdrant_client.QdrantClient(":memory:"), collection_name="docs")
    index = VectorStoreIndex.from_documents([Document(text=t) for t in TEXTS], embed_model=embed_model,
                                            storage_context=StorageContext.from_defaults(vector_store=store))
    assert index.as_retriever(similarity_top_k=1).retrieve(TEXTS[1])[0].text == TEXTS[1]


# --- async ---------------------------------------------------------------------------------------
async def test_concurrent_async_queries_are_encoded_together(tiny_llama_dir, monkeypatch):
    embed_model = LLM2VecEmbedding(model=str(tiny_llama_dir))
    queries = [f"question number {i}" for i in range(6)]
    expected = [embed_model.get_query_embedding(q) for q in queries]
    calls = count_encode_calls(monkeypatch, embed_model.encoder)
    got = await asyncio.gather(*(embed_model.aget_query_embedding(q) for q in queries))
    assert len(calls) < len(queries)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


async def test_async_text_embeddings_match_sync(embed_model):
    expected = embed_model.get_text_embedding_batch(TEXTS)
    got = await embed_model.aget_text_embedding_batch(TEXTS)
    single = await embed_model.aget_text_embedding(TEXTS[0])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(single, expected[0], rtol=1e-4, atol=1e-6)


# --- bad input -----------------------------------------------------------------------------------
def test_empty_batch_returns_empty_list(embed_model):
    assert embed_model.get_text_embedding_batch([]) == []


@pytest.mark.parametrize(("text", "error"), [("", ValueError), (None, TypeError), (7, TypeError)])
def test_bad_text_raises_a_clear_error(embed_model, text, error):
    with pytest.raises(error, match="text 0"):
        embed_model.get_text_embedding(text)
    with pytest.raises(error, match="text 0"):
        embed_model.get_query_embedding(text)


def test_bad_text_in_a_batch_is_named_by_its_index(embed_model):
    with pytest.raises(ValueError, match="text 2 is an empty string"):
        embed_model.get_text_embedding_batch(["a", "b", ""])
