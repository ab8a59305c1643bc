"""Layer pruning: a model cut to its first N layers encodes as the full model's N-th layer (through the
final norm), saves and loads as a plain model of that depth, and L3Prune picks N from per-layer losses."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from llm2vec_plugins import LLM2Vec
from llm2vec_plugins.pooling import pool
from llm2vec_plugins.pruning import choose_num_layers, layer_embeddings, prune_layers
from tests.tiny_models import build_tiny_model

TEXTS = ["a fox jumps over the dog", "a man plays guitar", "two dogs run in a field today"]


@pytest.fixture(scope="module")
def deep_llama(tmp_path_factory, tiny_tokenizer_dir):
    return build_tiny_model("llama", tmp_path_factory.mktemp("llama4"), tiny_tokenizer_dir, layers=4)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_pruned_encoder_equals_the_full_models_layer_through_the_final_norm(deep_llama):
    full = LLM2Vec.from_pretrained(deep_llama, device="cpu")
    pruned = LLM2Vec.from_pretrained(deep_llama, device="cpu", num_layers=2)
    assert len(pruned.model.layers) == 2 and pruned.model.config.num_hidden_layers == 2
    features = full.tokenize(TEXTS)
    with torch.no_grad():
        out = full.model(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                         output_hidden_states=True, use_cache=False)
        # hidden_states[2] is the output of the second layer, before the final norm
        expected = pool(full.model.norm(out.hidden_states[2]), features["embed_mask"], features["attention_mask"], "mean")
    np.testing.assert_allclose(pruned.encode(TEXTS), expected.numpy(), rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    # the hooks of layer_embeddings see the same thing, at every depth
    per_layer = layer_embeddings(full, features)
    assert len(per_layer) == 4
    np.testing.assert_allclose(per_layer[1].numpy(), expected.numpy(), rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    np.testing.assert_allclose(per_layer[3].numpy(), full.encode(TEXTS), rtol=1e-4,
                               atol=1e-5 * float(per_layer[3].abs().max()))
    assert pruned.identity["num_layers"] == 2 and full.identity["num_layers"] == 4


def test_pruned_encoder_saves_a_plain_model_of_its_depth(deep_llama, tmp_path):
    pruned = LLM2Vec.from_pretrained(deep_llama, device="cpu", num_layers=3)
    pruned.save(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["num_hidden_layers"] == 3
    with safe_open(tmp_path / "saved" / "model.safetensors", "pt") as f:
        layers = {int(k.split(".")[1]) for k in f.keys() if k.startswith("layers.")}
    assert layers == {0, 1, 2}
    again = LLM2Vec.from_pretrained(tmp_path / "saved", device="cpu")
    assert len(again.model.layers) == 3
    assert _cosines(again.encode(TEXTS), pruned.encode(TEXTS)).min() > 0.99999


def test_layer_types_are_cut_with_the_layers(tiny_tokenizer_dir, tmp_path):
    folder = build_tiny_model("gemma3", tmp_path / "gemma3", tiny_tokenizer_dir, layers=4)
    pruned = LLM2Vec.from_pretrained(folder, device="cpu", num_layers=3)  # verifies bidirectional attention too
    assert len(pruned.model.config.layer_types) == 3 and len(pruned.model.layers) == 3
    assert np.isfinite(pruned.encode(TEXTS)).all()


@pytest.mark.parametrize("bad", [0, 5, -1])
def test_a_depth_outside_the_model_is_refused(deep_llama, bad):
    with pytest.raises(ValueError, match="num_layers must be an integer from 1 to 4"):
        LLM2Vec.from_pretrained(deep_llama, device="cpu", num_layers=bad)


def test_prune_layers_cuts_a_loaded_model_in_place(deep_llama):
    encoder = LLM2Vec.from_pretrained(deep_llama, device="cpu")
    expected = LLM2Vec.from_pretrained(deep_llama, device="cpu", num_layers=1).encode(TEXTS)
    prune_layers(encoder.model, 1)
    assert encoder.model.config.num_hidden_layers == 1
    assert _cosines(encoder.encode(TEXTS), expected).min() > 0.99999


def test_l3prune_takes_the_lowest_loss_overall_or_in_the_first_half():
    losses = [3.0, 2.0, 2.5, 1.5, 1.8, 1.9]
    assert choose_num_layers(losses, "large") == 4
    assert choose_num_layers(losses, "small") == 2
    assert choose_num_layers([1.0], "small") == 1
    with pytest.raises(ValueError):
        choose_num_layers([], "large")
