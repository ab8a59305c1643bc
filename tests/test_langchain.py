"""LLM2VecEmbeddings (LangChain): the standard suites, options, instructions, bad input, the shared
model cache, async micro-batching and a real Qdrant vector store."""
from __future__ import annotations

import asyncio
import gc
import shutil
import threading

import numpy as np
import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

import llm2vec_plugins
from llm2vec_plugins import LLM2Vec
from llm2vec_plugins.integrations.langchain import LLM2VecEmbeddings
from llm2vec_plugins.loading import DEFAULT_ENCODER
from llm2vec_plugins.shared import DEFAULT_QUERY_INSTRUCTION, get_encoder
from tests.spies import count_encode_calls


class TinyModel:
    """Runs LangChain's standard suites on the tiny random Llama (real model, real forward passes)."""

    @pytest.fixture(autouse=True)
    def _tiny_model(self, tiny_llama_dir):
        self.model_dir = tiny_llama_dir

    @property
    def embeddings_class(self) -> type[LLM2VecEmbeddings]:
        return LLM2VecEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"model": str(self.model_dir)}


class TestLangChainStandardUnit(TinyModel, EmbeddingsUnitTests):
    pass


class TestLangChainStandardIntegration(TinyModel, EmbeddingsIntegrationTests):
    pass


@pytest.fixture
def embeddings(tiny_llama_dir) -> LLM2VecEmbeddings:
    return LLM2VecEmbeddings(model=str(tiny_llama_dir))


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


# --- construction and options ----------------------------------------------------------------
def test_no_argument_adapter_targets_the_default_encoder_and_loads_nothing_yet():
    embeddings = LLM2VecEmbeddings()
    assert embeddings.model == DEFAULT_ENCODER
    assert embeddings.query_instruction == DEFAULT_QUERY_INSTRUCTION
    assert embeddings.document_instruction is None
    assert embeddings._encoder is None  # lazy: loading happens on the first embed call


def test_adapter_is_reexported_from_the_package():
    assert llm2vec_plugins.LLM2VecEmbeddings is LLM2VecEmbeddings


def test_misspelt_option_is_rejected():
    with pytest.raises(ValueError, match="batchsize"):
        LLM2VecEmbeddings(batchsize=8)


@pytest.mark.parametrize("options", [{"batch_size": 0}, {"max_length": -1}, {"pooling_mode": "max"},
                                     {"dtype": "int8"}])
def test_invalid_option_values_are_rejected(options):
    with pytest.raises(ValueError):
        LLM2VecEmbeddings(**options)


def test_every_option_is_documented():
    for name, info in LLM2VecEmbeddings.model_fields.items():
        assert info.description, f"option {name!r} has no docstring"


# --- embedding behaviour ---------------------------------------------------------------------
def test_embeddings_are_unit_length_lists_of_python_floats(embeddings):
    docs = embeddings.embed_documents(["a cat", "a dog on a mat"])
    query = embeddings.embed_query("a cat")
    assert isinstance(docs, list) and all(isinstance(x, float) for row in docs for x in row)
    assert isinstance(query, list) and len(query) == len(docs[0]) == embeddings.encoder.embedding_dim
    np.testing.assert_allclose(np.linalg.norm([*docs, query], axis=1), 1.0, rtol=1e-5)


def test_normalize_false_returns_the_backend_vectors_unchanged(tiny_llama_dir):
    embeddings = LLM2VecEmbeddings(model=str(tiny_llama_dir), normalize=False)
    raw = embeddings.encoder.llm2vec.encode(["a cat", "a dog"])
    np.testing.assert_allclose(embeddings.embed_documents(["a cat", "a dog"]), raw, rtol=1e-5, atol=1e-6)


def test_query_instruction_is_attended_but_not_pooled(embeddings):
    llm2vec = embeddings.encoder.llm2vec
    query = "what do dogs eat?"
    llm2vec_way = unit(llm2vec.encode([[DEFAULT_QUERY_INSTRUCTION, query]]))[0]
    concatenated = unit(llm2vec.encode([f"{DEFAULT_QUERY_INSTRUCTION} {query}"]))[0]
    plain = unit(llm2vec.encode([query]))[0]
    got = embeddings.embed_query(query)
    np.testing.assert_allclose(got, llm2vec_way, rtol=1e-4, atol=1e-6)
    assert not np.allclose(got, concatenated, atol=1e-4)
    assert not np.allclose(got, plain, atol=1e-4)  # the instruction does change the query vector


def test_documents_are_plain_text_unless_a_document_instruction_is_set(tiny_llama_dir, embeddings):
    llm2vec = embeddings.encoder.llm2vec
    np.testing.assert_allclose(embeddings.embed_documents(["a cat"])[0], unit(llm2vec.encode(["a cat"]))[0],
                               rtol=1e-4, atol=1e-6)
    instructed = LLM2VecEmbeddings(model=str(tiny_llama_dir), document_instruction="Represent the passage:")
    np.testing.assert_allclose(instructed.embed_documents(["a cat"])[0],
                               unit(llm2vec.encode([["Represent the passage:", "a cat"]]))[0], rtol=1e-4, atol=1e-6)


def test_query_instruction_none_embeds_queries_like_documents(tiny_llama_dir):
    embeddings = LLM2VecEmbeddings(model=str(tiny_llama_dir), query_instruction=None)
    np.testing.assert_allclose(embeddings.embed_query("a cat"), embeddings.embed_documents(["a cat"])[0], rtol=1e-5)


def test_output_order_follows_input_order_across_batches(tiny_llama_dir):
    texts = ["a", "a much longer text about dogs and cats", "mid length text", "b", "another text"]
    batched = LLM2VecEmbeddings(model=str(tiny_llama_dir), batch_size=2).embed_documents(texts)
    one_by_one = [LLM2VecEmbeddings(model=str(tiny_llama_dir)).embed_documents([t])[0] for t in texts]
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-5)


def test_pooling_mode_option_changes_vectors_but_shares_weights(tiny_llama_dir, embeddings):
    eos = LLM2VecEmbeddings(model=str(tiny_llama_dir), pooling_mode="eos_token")
    assert eos.encoder.llm2vec.pooling_mode == "eos_token"
    assert eos.encoder.llm2vec.model is embeddings.encoder.llm2vec.model
    assert not np.allclose(eos.embed_documents(["a cat"]), embeddings.embed_documents(["a cat"]), atol=1e-4)


@pytest.mark.filterwarnings("ignore:.*truncated")  # expected again by the backend calls that check the result
def test_max_length_caps_the_whole_input_and_warns(tiny_llama_dir):
    short = LLM2VecEmbeddings(model=str(tiny_llama_dir), max_length=4, query_instruction=None)
    long_text = "the quick brown fox jumps over the lazy dog " * 4
    with pytest.warns(UserWarning, match="truncated"):
        vector = short.embed_documents([long_text])[0]
    assert short.encoder.llm2vec.model is LLM2VecEmbeddings(model=str(tiny_llama_dir)).encoder.llm2vec.model
    ids = short.encoder.llm2vec.tokenize([long_text])["input_ids"]
    assert ids.shape[1] == 4
    np.testing.assert_allclose(vector, unit(short.encoder.llm2vec.encode([long_text]))[0], rtol=1e-4, atol=1e-6)


def test_show_progress_draws_a_progress_bar(tiny_llama_dir, capsys):
    LLM2VecEmbeddings(model=str(tiny_llama_dir), show_progress=True).embed_documents(["a cat", "a dog"])
    assert "Encoding" in capsys.readouterr().err


# --- bad input -------------------------------------------------------------------------------
def test_empty_document_list_returns_empty_list_without_loading_a_model():
    embeddings = LLM2VecEmbeddings(model="/no/such/model")  # would fail if it tried to load
    assert embeddings.embed_documents([]) == []
    assert asyncio.run(embeddings.aembed_documents([])) == []


@pytest.mark.parametrize(
    ("texts", "error", "message"),
    [
        (None, TypeError, "expected a list of texts, got NoneType"),
        ("a single string", TypeError, "wrap it in a list"),
        (["ok", None], TypeError, "text 1 must be a str, got NoneType"),
        (["ok", 3], TypeError, "text 1 must be a str, got int"),
        (["ok", ["instruction", "text"]], TypeError, "text 1 must be a str, got list"),
        (["ok", ""], ValueError, "text 1 is an empty string"),
    ],
)
def test_bad_documents_raise_a_clear_error(embeddings, texts, error, message):
    with pytest.raises(error, match=message):
        embeddings.embed_documents(texts)
    with pytest.raises(error, match=message):
        asyncio.run(embeddings.aembed_documents(texts))


@pytest.mark.parametrize(("query", "error"), [(None, TypeError), ("", ValueError), (42, TypeError)])
def test_bad_query_raises_a_clear_error(embeddings, query, error):
    with pytest.raises(error, match="text 0"):
        embeddings.embed_query(query)


def test_whitespace_only_text_is_embedded_over_all_its_tokens(embeddings):
    # Documented backend result: a text with no token of its own is pooled over all input tokens.
    assert len(embeddings.embed_documents(["   "])[0]) == embeddings.encoder.embedding_dim


# --- one shared model --------------------------------------------------------------------------
def test_instances_with_the_same_options_share_one_loaded_model(tiny_llama_dir):
    a = LLM2VecEmbeddings(model=str(tiny_llama_dir), batch_size=4)
    b = LLM2VecEmbeddings(model=tiny_llama_dir, query_instruction="Find similar text:", normalize=False)
    assert a.encoder is b.encoder  # embedding-time options do not need another model
    assert a.encoder is get_encoder(tiny_llama_dir)


def test_concurrent_first_use_loads_the_model_once(tiny_llama_dir, tmp_path, monkeypatch):
    model_dir = shutil.copytree(tiny_llama_dir, tmp_path / "fresh-model")  # a model nobody loaded yet
    loads = []
    real = LLM2Vec.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args[0])
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(LLM2Vec, "from_pretrained", classmethod(counting))
    adapters = [LLM2VecEmbeddings(model=str(model_dir)) for _ in range(4)]
    barrier = threading.Barrier(len(adapters))
    results = [None] * len(adapters)

    def first_use(i):
        barrier.wait()
        results[i] = adapters[i].embed_query("a cat")

    threads = [threading.Thread(target=first_use, args=(i,)) for i in range(len(adapters))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    assert len({id(a.encoder) for a in adapters}) == 1
    assert all(r == results[0] for r in results)


def test_model_is_released_when_no_adapter_uses_it(tiny_llama_dir, tmp_path):
    import weakref

    model_dir = shutil.copytree(tiny_llama_dir, tmp_path / "released-model")
    embeddings = LLM2VecEmbeddings(model=str(model_dir))
    embeddings.embed_query("a cat")
    model = weakref.ref(embeddings.encoder.llm2vec)
    del embeddings
    gc.collect()
    assert model() is None


# --- async -----------------------------------------------------------------------------------
async def test_concurrent_aembed_query_calls_are_encoded_together(embeddings, monkeypatch):
    queries = [f"question number {i}" for i in range(8)]
    expected = [embeddings.embed_query(q) for q in queries]
    calls = count_encode_calls(monkeypatch, embeddings.encoder)
    got = await asyncio.gather(*(embeddings.aembed_query(q) for q in queries))
    assert len(calls) < len(queries) and sum(calls) == len(queries)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


async def test_async_documents_and_queries_mix_in_one_batch_with_their_own_instructions(embeddings, monkeypatch):
    expected_docs = embeddings.embed_documents(["a cat", "a dog"])
    expected_query = embeddings.embed_query("a cat")
    calls = count_encode_calls(monkeypatch, embeddings.encoder)
    # A wide window, so that a busy CI machine cannot split the burst; the default is 10 ms.
    monkeypatch.setattr(embeddings.encoder.batcher, "window", 0.5)
    docs, query = await asyncio.gather(embeddings.aembed_documents(["a cat", "a dog"]),
                                       embeddings.aembed_query("a cat"))
    assert calls == [3]
    np.testing.assert_allclose(docs, expected_docs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(query, expected_query, rtol=1e-4, atol=1e-6)


async def test_bad_input_of_one_async_caller_does_not_fail_the_others(embeddings):
    good, bad = await asyncio.gather(embeddings.aembed_query("a cat"), embeddings.aembed_query(""),
                                     return_exceptions=True)
    assert isinstance(bad, ValueError)
    assert len(good) == embeddings.encoder.embedding_dim


# --- real vector store ------------------------------------------------------------------------
def test_qdrant_vector_store_returns_the_matching_document(tiny_llama_dir):
    from langchain_qdrant import QdrantVectorStore

    texts = ["LoRA adds low-rank matrices to frozen weights.", "Paris is the capital of France.",
             "Two dogs run in a field."]
    # A random tiny model has no semantics: retrieve a document by its own text (no query instruction).
    embeddings = LLM2VecEmbeddings(model=str(tiny_llama_dir), query_instruction=None)
    store = QdrantVectorStore.from_texts(texts, embeddings, location=":memory:", collection_name="docs")
    for text in texts:
        assert store.similarity_search(text, k=1)[0].page_content == text


@pytest.mark.slow
def test_default_encoder_ranks_the_relevant_document_first():
    from langchain_qdrant import QdrantVectorStore

    embeddings = LLM2VecEmbeddings()
    try:
        embeddings.embed_query("warm-up")
    except FileNotFoundError as err:  # adapters not shipped in this checkout yet
        pytest.skip(str(err))
    texts = ["LoRA adds low-rank matrices to frozen weights of a neural network.",
             "Paris is the capital and largest city of France.",
             "The recipe needs two eggs, flour and a cup of milk."]
    store = QdrantVectorStore.from_texts(texts, embeddings, location=":memory:", collection_name="docs")
    assert store.similarity_search("What is the capital of France?", k=1)[0].page_content == texts[1]
    assert store.similarity_search("How do I bake a cake?", k=1)[0].page_content == texts[2]
