"""LLM2Vec.encode / from_pretrained / save on tiny models, and on the real SmolLM2 weights (slow)."""
import json

import numpy as np
import pytest
import torch

from llm2vec_plugins import LLM2Vec

INSTRUCTION = "Retrieve semantically similar text:"


def _mixed_texts(n=64):
    rng = np.random.default_rng(0)
    words = "the quick brown fox jumps over a lazy dog while two cats sleep in the warm sun".split()
    return [" ".join(rng.choice(words, size=rng.integers(1, 60))) for _ in range(n)]


def assert_vectors_close(actual, expected):
    """Equal up to float rounding, on any CPU: a relative tolerance, plus an absolute one scaled to the
    vectors' size for the components near zero (summation order differs between kernels and CPUs)."""
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5 * float(np.abs(expected).max()))


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    return LLM2Vec.from_pretrained(tiny_llama_dir)


def test_encode_returns_float32_numpy_in_input_order(tiny):
    texts = _mixed_texts(10)
    batched = tiny.encode(texts, batch_size=3)
    assert batched.dtype == np.float32 and batched.shape == (10, tiny.embedding_dim)
    for i in (0, 4, 9):
        assert _cos(batched[i], tiny.encode([texts[i]])[0]) > 0.99999


def test_text_alone_and_in_a_batch_of_64_mixed_lengths_agree(tiny):
    texts = _mixed_texts(64)
    batched = tiny.encode(texts, batch_size=64, max_batch_tokens=None)
    worst = min(_cos(batched[i], tiny.encode([texts[i]])[0]) for i in range(0, 64, 7))
    assert worst >= 0.99999


def test_token_budget_does_not_change_embeddings(tiny):
    texts = _mixed_texts(20)
    a = tiny.encode(texts, batch_size=32, max_batch_tokens=None)
    b = tiny.encode(texts, batch_size=32, max_batch_tokens=64)
    assert_vectors_close(a, b)


def test_empty_list_gives_empty_matrix(tiny):
    out = tiny.encode([])
    assert out.shape == (0, tiny.embedding_dim) and out.dtype == np.float32


def test_tensor_output_and_normalization(tiny):
    out = tiny.encode(["one", "two words"], convert_to_tensor=True, normalize_embeddings=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))


def test_instruction_is_attended_but_changes_nothing_when_skipped_from_pooling(tiny):
    text = "a lazy dog sleeps"
    plain, instructed, other = tiny.encode([text, [INSTRUCTION, text], ["Find the topic:", text]])
    # Attended: the instruction moves the text's token states ...
    assert not np.allclose(plain, instructed, atol=1e-6)
    assert not np.allclose(instructed, other, atol=1e-6)
    # ... but its own states are not pooled: mean over exactly the text tokens.
    features = tiny.tokenize([[INSTRUCTION, text]])
    with torch.no_grad():
        hidden = tiny.model(input_ids=features["input_ids"], attention_mask=features["attention_mask"]).last_hidden_state
    manual = hidden[0][features["embed_mask"][0].bool()].mean(0).numpy()
    assert_vectors_close(instructed, manual)


def test_save_and_from_pretrained_round_trip(tiny_llama_dir, tmp_path):
    model = LLM2Vec.from_pretrained(tiny_llama_dir, pooling_mode="weighted_mean", max_length=64)
    texts = ["a cat", [INSTRUCTION, "a dog"]]
    before = model.encode(texts)
    model.save(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "llm2vec_config.json").read_text())
    assert saved == {"pooling_mode": "weighted_mean", "max_length": 64, "doc_max_length": 400, "skip_instruction": True}
    assert "is_causal" not in json.loads((tmp_path / "saved" / "config.json").read_text())
    again = LLM2Vec.from_pretrained(tmp_path / "saved")
    assert again.pooling_mode == "weighted_mean" and again.max_length == 64
    assert_vectors_close(again.encode(texts), before)


def test_explicit_settings_override_the_saved_config(tiny_llama_dir, tmp_path):
    LLM2Vec.from_pretrained(tiny_llama_dir, pooling_mode="last_token").save(tmp_path / "m")
    assert LLM2Vec.from_pretrained(tmp_path / "m", pooling_mode="mean").pooling_mode == "mean"


@pytest.fixture(scope="module")
def lora_dir(tiny_llama_dir, tmp_path_factory):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    base = AutoModel.from_pretrained(tiny_llama_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], init_lora_weights=False)
    path = tmp_path_factory.mktemp("lora")
    get_peft_model(base, config).save_pretrained(path)
    adapter_config = json.loads((path / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = str(tiny_llama_dir)
    (path / "adapter_config.json").write_text(json.dumps(adapter_config))
    return path


def test_peft_adapter_stacked_merged_or_not_gives_same_embeddings(tiny_llama_dir, lora_dir):
    texts = ["a cat sleeps", [INSTRUCTION, "a dog runs"]]
    base = LLM2Vec.from_pretrained(tiny_llama_dir).encode(texts)
    stacked = LLM2Vec.from_pretrained(tiny_llama_dir, lora_dir)
    merged = LLM2Vec.from_pretrained(tiny_llama_dir, lora_dir, merge_peft=True)
    assert type(stacked.model).__name__ == "PeftModel" and type(merged.model).__name__ != "PeftModel"
    assert not np.allclose(base, stacked.encode(texts), atol=1e-4)
    assert_vectors_close(stacked.encode(texts), merged.encode(texts))


def test_adapter_folder_as_base_loads_its_base_and_merges(tiny_llama_dir, lora_dir):
    texts = ["a cat sleeps"]
    via_folder = LLM2Vec.from_pretrained(lora_dir)
    explicit = LLM2Vec.from_pretrained(tiny_llama_dir, lora_dir, merge_peft=True)
    assert_vectors_close(via_folder.encode(texts), explicit.encode(texts))


def test_bfloat16_encoding_returns_float32_close_to_float32(tiny_llama_dir):
    texts = _mixed_texts(8)
    full = LLM2Vec.from_pretrained(tiny_llama_dir).encode(texts)
    half = LLM2Vec.from_pretrained(tiny_llama_dir, dtype="bfloat16").encode(texts)
    assert half.dtype == np.float32
    assert min(_cos(a, b) for a, b in zip(full, half)) > 0.99


def test_unknown_pooling_mode_lists_the_valid_ones(tiny_llama_dir):
    with pytest.raises(ValueError, match="weighted_mean"):
        LLM2Vec.from_pretrained(tiny_llama_dir, pooling_mode="max")


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LLM2Vec.from_pretrained(str(tmp_path / "no" / "such" / "model"))


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        LLM2Vec.from_pretrained(tmp_path)


def test_encoder_only_model_is_refused(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer, BertConfig, BertModel

    BertModel(BertConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a decoder-only"):
        LLM2Vec.from_pretrained(tmp_path)


def test_pickled_weights_are_never_loaded(tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    state = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).state_dict()
    torch.save(state, tmp_path / "pytorch_model.bin")  # a pickle: could run code when loaded
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((tiny_llama_dir / name).read_bytes())
    with pytest.raises(OSError):
        LLM2Vec.from_pretrained(tmp_path)


@pytest.mark.slow
def test_smollm2_batch_invariance(smollm2_dir):
    # Untrained bidirectional SmolLM2 is a poor encoder (the paper's point); only invariance is checked here.
    model = LLM2Vec.from_pretrained(smollm2_dir)
    texts = _mixed_texts(64)
    batched = model.encode(texts, batch_size=64)
    assert np.isfinite(batched).all()
    assert min(_cos(batched[i], model.encode([texts[i]])[0]) for i in range(0, 64, 9)) >= 0.99999


@pytest.mark.slow
def test_gguf_is_converted_once_and_cached(smollm2_dir):
    from llm2vec_plugins.loading import resolve

    assert (smollm2_dir / "config.json").is_file() and list(smollm2_dir.glob("*.safetensors"))
    assert resolve("smollm2-135m-instruct").base == str(smollm2_dir)  # second resolve reuses the cache


def test_adapter_beside_full_weights_is_merged_onto_those_weights(tiny_llama_dir, lora_dir, tmp_path):
    import shutil

    folder = tmp_path / "model-with-adapter"
    shutil.copytree(tiny_llama_dir, folder)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(lora_dir / name, folder / name)
    texts = ["a cat sleeps"]
    explicit = LLM2Vec.from_pretrained(tiny_llama_dir, lora_dir, merge_peft=True).encode(texts)
    assert_vectors_close(LLM2Vec.from_pretrained(folder).encode(texts), explicit)


def test_encode_spread_over_devices_gives_the_same_vectors(tiny_llama_dir):
    """The multi-GPU path (one replica per device, batches dealt round-robin), run on two CPU replicas."""
    model = LLM2Vec.from_pretrained(tiny_llama_dir)
    texts = _mixed_texts(40)
    single = model.encode(texts, batch_size=4)
    model.data_parallel_devices = ["cpu", "cpu"]
    spread = model.encode(texts, batch_size=4)
    assert len(model._replicas) == 1
    assert_vectors_close(spread, single)
    # A weight update in place (as a training step makes) must reach the replica before the next encode.
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(1.5)
    spread = model.encode(texts, batch_size=4)
    model.data_parallel_devices = None
    single = model.encode(texts, batch_size=4)
    assert_vectors_close(spread, single)


@pytest.mark.slow
def test_default_encoder_survives_save_and_load(smollm2_dir, tmp_path):
    """The alias stacks a supervised adapter on MNTP-merged weights: save() must keep both."""
    model = LLM2Vec.from_pretrained("smollm2-135m-llm2vec")
    texts = _mixed_texts(12) + [[INSTRUCTION, "a dog runs"]]
    before = model.encode(texts)
    model.save(tmp_path / "saved")
    after = LLM2Vec.from_pretrained(tmp_path / "saved").encode(texts)
    assert min(_cos(a, b) for a, b in zip(before, after)) >= 0.99999


def test_pretokenized_inputs_encode_to_the_same_rows_as_sentences(tiny):
    sentences = _mixed_texts(12) + [["Retrieve similar text:", "a dog barks"]]
    items = tiny.input_tokenizer(sentences)
    np.testing.assert_array_equal(tiny.encode(items), tiny.encode(sentences))


def test_malformed_pretokenized_input_is_refused(tiny):
    from llm2vec_plugins.tokenization import TokenizedText

    (item,) = tiny.input_tokenizer(["a cat"])
    with pytest.raises(ValueError, match="tokenized input 1"):
        tiny.encode([item, TokenizedText(item.input_ids, item.embed_mask[:-1])])

