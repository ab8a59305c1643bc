"""The published LLM2Vec checkpoints' path: loading by hub id from a Hugging Face cache, offline.

The cache (tests/hub_cache.py) holds tiny random models in exactly the layout of McGill-NLP's repos:
a base repo, a `-mntp` repo (adapter + the base's config.json + tokenizer, adapter naming the base) and
a `-mntp-supervised` repo (adapter only, naming the `-mntp` repo). The expected vectors come from
peft's own merge of the same adapters, not from our loader.
"""
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from llm2vec_plugins import LLM2Vec, set_bidirectional
from llm2vec_plugins.loading import _cpu_has_amx, load_tokenizer
from llm2vec_plugins.shared import get_encoder
from llm2vec_plugins.templates import TEMPLATES
from tests.hub_cache import FAMILIES

TEXTS = ["a man is playing a guitar", "two dogs run in a field", ["Retrieve semantically similar text:", "a cat sleeps"],
         ["Given a question, retrieve passages that answer the question:", "what is a fox?"]]


def _kwargs(family):
    # Gemma 2 soft-caps attention logits, which transformers implements in eager attention only.
    return {"attn_implementation": "eager"} if family == "gemma" else {}


def _min_cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def _peft_merged(ids, family, adapters):
    """The base by hub id with `adapters` merged one after the other by peft itself."""
    from peft import PeftModel
    from transformers import AutoModel

    model = AutoModel.from_pretrained(ids.base, dtype=torch.float32, **_kwargs(family))
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    set_bidirectional(model)
    return LLM2Vec(model.eval(), load_tokenizer(ids.mntp), template=TEMPLATES[ids.base])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_stacked_published_adapters_by_hub_id_match_peft_merge(hub_cache, family):
    ids = hub_cache(family)
    ours = LLM2Vec.from_pretrained(ids.mntp, peft_model_name_or_path=ids.supervised, **_kwargs(family))
    expected = _peft_merged(ids, family, [ids.mntp, ids.supervised])
    assert ours.template == TEMPLATES[ids.base]  # the instruct checkpoint's chat turn, found by hub id
    assert _min_cos(ours.encode(TEXTS), expected.encode(TEXTS)) >= 0.99999
    # ... and the supervised adapter really changes the vectors (the check above is not vacuous).
    mntp_only = _peft_merged(ids, family, [ids.mntp])
    assert _min_cos(ours.encode(TEXTS), mntp_only.encode(TEXTS)) < 0.999


@pytest.mark.parametrize("family", ["llama", "mistral"])
def test_mntp_repo_by_hub_id_is_base_plus_merged_adapter(hub_cache, family):
    ids = hub_cache(family)
    ours = LLM2Vec.from_pretrained(ids.mntp)
    assert _min_cos(ours.encode(TEXTS), _peft_merged(ids, family, [ids.mntp]).encode(TEXTS)) >= 0.99999


def test_merge_peft_gives_the_same_vectors_as_stacking(hub_cache):
    ids = hub_cache("llama")
    stacked = LLM2Vec.from_pretrained(ids.mntp, ids.supervised)
    merged = LLM2Vec.from_pretrained(ids.mntp, ids.supervised, merge_peft=True)
    assert _min_cos(stacked.encode(TEXTS), merged.encode(TEXTS)) >= 0.99999


def _round_trip(model, path):
    before = model.encode(TEXTS)
    model.save(path)
    after = LLM2Vec.from_pretrained(path)
    return _min_cos(before, after.encode(TEXTS)), after


@pytest.mark.parametrize("case", ["base", "mntp", "stacked", "stacked-merged", "folder-stacked"])
def test_every_load_combination_survives_save_and_load(hub_cache, tmp_path, case):
    ids = hub_cache("llama")
    if case == "base":
        model = LLM2Vec.from_pretrained(ids.base)
    elif case == "mntp":
        model = LLM2Vec.from_pretrained(ids.mntp)
    elif case == "stacked":
        model = LLM2Vec.from_pretrained(ids.mntp, ids.supervised, pooling_mode="weighted_mean")
    elif case == "stacked-merged":
        model = LLM2Vec.from_pretrained(ids.mntp, ids.supervised, merge_peft=True)
    else:  # the base saved as a plain folder, a stacked adapter on top: written adapter-only
        LLM2Vec.from_pretrained(ids.mntp).save(tmp_path / "mntp-merged")
        model = LLM2Vec.from_pretrained(tmp_path / "mntp-merged", ids.supervised)
    cosine, loaded = _round_trip(model, tmp_path / "saved")
    assert cosine >= 0.99999
    assert loaded.template == TEMPLATES[ids.base] and loaded.pooling_mode == model.pooling_mode
    config = tmp_path / "saved" / "config.json"
    if config.is_file():  # full weights: the reference finds the chat template by this id
        assert json.loads(config.read_text())["_name_or_path"] == ids.base


def test_revision_applies_to_the_named_repo_only(hub_cache, tmp_path):
    """A revision that exists only in the -mntp repo must reach its adapter, and not the base repo's loads
    (offline, a revision leaking to the base repo would fail to resolve)."""
    from huggingface_hub import constants

    from tests.hub_cache import _random_adapter, _snapshot

    ids = hub_cache("llama")
    cache = Path(constants.HF_HUB_CACHE)
    main = _snapshot(cache, ids.mntp)
    v2 = _snapshot(cache, ids.mntp, revision="v2")
    shutil.copytree(main, v2, dirs_exist_ok=True)
    _random_adapter(_snapshot(cache, ids.base), tmp_path / "adapter-v2", ids.base, seed=7)
    shutil.copy(tmp_path / "adapter-v2" / "adapter_model.safetensors", v2 / "adapter_model.safetensors")
    at_main = LLM2Vec.from_pretrained(ids.mntp).encode(TEXTS)
    at_v2 = LLM2Vec.from_pretrained(ids.mntp, revision="v2").encode(TEXTS)
    assert _min_cos(at_main, at_v2) < 0.999


def test_adapter_options_keep_the_chat_template(hub_cache):
    ids = hub_cache("llama")
    encoder = get_encoder(ids.mntp, ids.supervised, pooling_mode="weighted_mean", max_length=64)
    assert encoder.llm2vec.template == TEMPLATES[ids.base]
    assert encoder.llm2vec.pooling_mode == "weighted_mean" and encoder.llm2vec.max_length == 64


def test_contrastive_training_tokenizes_with_the_template_inference_applies(hub_cache, tmp_path):
    from llm2vec_plugins.training.config import build_config
    from llm2vec_plugins.training.trainer import load_for_training

    ids = hub_cache("llama")
    config = build_config("supervised", model=ids.mntp, data=str(tmp_path / "unused.jsonl"),
                          output_dir=str(tmp_path / "out"), max_length=64)
    training = load_for_training(config).encoder(config)
    inference = LLM2Vec.from_pretrained(ids.mntp, max_length=64, doc_max_length=64)
    assert training.template == TEMPLATES[ids.base]
    for key, value in inference.tokenize(TEXTS).items():
        assert torch.equal(training.tokenize(TEXTS)[key], value), key


def test_readme_hub_example_runs_and_stacks_both_adapters(hub_cache):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b.split("\n", 1)[1] for b in readme.split("```python")[1:] if "-mntp-supervised" in b)
    block = block.split("```")[0]
    ids = hub_cache("llama")
    assert ids.mntp in block and ids.supervised in block
    namespace = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(block, namespace)  # the README's own code, by hub id
    # No GPU here, so the weights land on the CPU: the bf16 warning is due exactly when it lacks AMX.
    assert any("without AMX" in str(w.message) for w in caught) == (not _cpu_has_amx())
    model = namespace["model"]
    assert next(model.model.parameters()).dtype == torch.bfloat16
    expected = _peft_merged(ids, "llama", [ids.mntp, ids.supervised])
    assert _min_cos(model.encode(TEXTS), expected.encode(TEXTS)) >= 0.99  # bf16 against float32
