"""Bidirectional attention is real for every supported architecture, kernel, batch size and padding."""
import pytest

from llm2vec_plugins import LLM2Vec, check_bidirectional
from tests.tiny_models import ARCHITECTURES

# Gemma 2 uses attention soft-capping, which transformers only implements in eager attention.
CASES = [(arch, impl) for arch in ARCHITECTURES for impl in ("sdpa", "eager") if (arch, impl) != ("gemma2", "sdpa")]


@pytest.mark.parametrize("arch,impl", CASES)
def test_last_token_changes_first_token_when_bidirectional(tiny_model_dirs, arch, impl):
    model = LLM2Vec.from_pretrained(tiny_model_dirs(arch), attn_implementation=impl, verify_bidirectional=False)
    report = check_bidirectional(model, batch_sizes=(1, 4), padded=(False, True))
    assert len(report.changes) == 4
    assert report.is_bidirectional, str(report)


@pytest.mark.parametrize("arch,impl", CASES)
def test_first_token_exactly_unchanged_when_causal(tiny_model_dirs, arch, impl):
    model = LLM2Vec.from_pretrained(
        tiny_model_dirs(arch), attn_implementation=impl, enable_bidirectional=False, verify_bidirectional=False
    )
    report = check_bidirectional(model, batch_sizes=(1, 4), padded=(False, True))
    assert all(change == 0.0 for change in report.changes.values()), str(report)


def test_encoded_text_depends_on_later_tokens_only_when_bidirectional(tiny_llama_dir):
    # Through the public encode path: the first token's state feeds the pooled mean, so with
    # bos_token pooling (first token only) a change at the end must move the embedding.
    texts = ["the quick brown fox", "the quick brown dog"]
    bi = LLM2Vec.from_pretrained(tiny_llama_dir, pooling_mode="bos_token").encode(texts)
    causal = LLM2Vec.from_pretrained(tiny_llama_dir, pooling_mode="bos_token", enable_bidirectional=False).encode(texts)
    assert abs(bi[0] - bi[1]).max() > 1e-5
    assert abs(causal[0] - causal[1]).max() == 0.0


def test_check_reports_causal_model_as_not_bidirectional(tiny_llama_dir):
    model = LLM2Vec.from_pretrained(tiny_llama_dir, enable_bidirectional=False)
    report = check_bidirectional(model.model)
    assert not report.is_bidirectional and report.is_causal
    assert "causal" in str(report)


@pytest.mark.slow
def test_real_smollm2_is_bidirectional(smollm2_dir):
    model = LLM2Vec.from_pretrained(smollm2_dir)
    assert check_bidirectional(model, batch_sizes=(1, 3), padded=(False, True)).is_bidirectional
