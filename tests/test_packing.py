"""Packed batches (several texts per row, block-diagonal attention, positions restarted per text) give
the vectors padded batches give, on every architecture we load and every pooling mode."""
import numpy as np
import pytest

from llm2vec_plugins import LLM2Vec
from llm2vec_plugins.batching import TokenBudgetBatcher
from tests.test_encoder import INSTRUCTION, _mixed_texts, assert_vectors_close
from tests.tiny_models import ARCHITECTURES


def test_packed_batches_cover_every_index_once_within_the_budgets():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 90, size=500).tolist()
    batcher = TokenBudgetBatcher(batch_size=8, max_batch_tokens=400)
    seen = []
    for forward in batcher.packed_batches(lengths):
        width = max(lengths[row[0]] for row in forward)
        assert 1 <= len(forward) <= max(1, min(8, 400 // width))
        for row in forward:
            assert sum(lengths[i] for i in row) <= width
        seen += [i for row in forward for i in row]
    assert sorted(seen) == list(range(500))
    # Never more token slots than padding; far fewer where one pass holds varied lengths (a small call).
    def slots(forwards):
        return sum(len(f) * max(lengths[row[0]] for row in f) for f in forwards)

    assert slots(batcher.packed_batches(lengths)) <= slots([[[i] for i in b] for b in batcher.batches(lengths)])
    lengths = lengths[:32]
    batcher = TokenBudgetBatcher(batch_size=32, max_batch_tokens=None)
    assert slots(batcher.packed_batches(lengths)) < 0.7 * slots([[[i] for i in b] for b in batcher.batches(lengths)])

def test_a_text_longer_than_the_budget_still_gets_its_own_pass():
    assert list(TokenBudgetBatcher(batch_size=4, max_batch_tokens=10).packed_batches([50, 3])) == [[[0]], [[1]]]


@pytest.mark.filterwarnings("ignore:.*truncated")
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_packed_and_padded_batches_give_the_same_vectors(arch, tiny_model_dirs):
    model = LLM2Vec.from_pretrained(tiny_model_dirs(arch))
    texts = _mixed_texts(40) + [[INSTRUCTION, t] for t in _mixed_texts(8)]
    # The tiny sliding-window models have windows of 64: keep texts within it so they can pack.
    model.max_length = 60
    assert model.can_pack(60)
    padded = model.encode(texts, batch_size=16, pack=False)
    packed = model.encode(texts, batch_size=16, pack=True)
    assert_vectors_close(packed, padded)


@pytest.mark.parametrize("mode", ["mean", "weighted_mean", "last_token", "eos_token", "bos_token"])
def test_every_pooling_mode_packs_to_the_same_vectors(mode, tiny_llama_dir):
    model = LLM2Vec.from_pretrained(tiny_llama_dir, pooling_mode=mode)
    texts = _mixed_texts(30) + [[INSTRUCTION, t] for t in _mixed_texts(6)]
    assert_vectors_close(model.encode(texts, batch_size=8, pack=True), model.encode(texts, batch_size=8, pack=False))


def test_eager_attention_packs_to_the_same_vectors(tiny_llama_dir):
    model = LLM2Vec.from_pretrained(tiny_llama_dir, attn_implementation="eager")
    assert model.model.config._attn_implementation == "eager"
    texts = _mixed_texts(24)
    assert_vectors_close(model.encode(texts, pack=True), model.encode(texts, pack=False))


def test_packing_really_shares_rows_and_each_text_sees_only_itself(tiny_llama_dir):
    model = LLM2Vec.from_pretrained(tiny_llama_dir)
    texts = [" ".join(["dog"] * 40), " ".join(["cat"] * 20), "a bird"]
    lengths = [len(t) for t in model.input_tokenizer(texts)]
    forwards = list(TokenBudgetBatcher(batch_size=2).packed_batches(lengths))
    assert len(forwards) == 1 and sorted(map(len, forwards[0])) == [1, 2]  # two of the texts share a row
    together = model.encode(texts, batch_size=2, pack=True)
    alone = np.stack([model.encode([t], pack=False)[0] for t in texts])
    assert_vectors_close(together, alone)

def test_a_window_shorter_than_the_texts_turns_packing_off(tiny_model_dirs):
    model = LLM2Vec.from_pretrained(tiny_model_dirs("mistral"))  # sliding window 64
    model.max_length = 200
    long = " ".join(["word"] * 150)
    assert model.can_pack(60) and not model.can_pack(150)
    with pytest.raises(ValueError, match="cannot pack"):
        model.encode([long, "short"], pack=True)
    assert_vectors_close(model.encode([long, "short"]), model.encode([long, "short"], pack=False))


def test_a_causal_encoder_stays_causal_when_packed(tiny_llama_dir):
    model = LLM2Vec.from_pretrained(tiny_llama_dir, enable_bidirectional=False, pooling_mode="bos_token")
    texts = ["the quick brown fox", "the quick brown dog"] + _mixed_texts(10)
    packed = model.encode(texts, pack=True)
    assert np.abs(packed[0] - packed[1]).max() == 0.0  # the first token cannot see the last
    assert_vectors_close(packed, model.encode(texts, pack=False))
    mean = LLM2Vec.from_pretrained(tiny_llama_dir, enable_bidirectional=False)
    assert_vectors_close(mean.encode(texts, pack=True), mean.encode(texts, pack=False))
