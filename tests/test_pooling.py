"""Pooling modes agree for left and right padding and pool exactly the marked tokens."""
import pytest
import torch

from llm2vec_plugins.config import POOLING_MODES
from llm2vec_plugins.pooling import pool

LENGTHS = [5, 2, 4]
WIDTH = 6


def _batch(side: str):
    torch.manual_seed(0)
    real = [torch.randn(n, 3) for n in LENGTHS]
    text = [torch.tensor([0] * (n - 3) + [1] * 3) if n > 3 else torch.ones(n, dtype=torch.long) for n in LENGTHS]
    hidden = torch.full((len(LENGTHS), WIDTH, 3), 99.0)  # pad states are huge: any leak shows
    attn = torch.zeros(len(LENGTHS), WIDTH, dtype=torch.long)
    embed = torch.zeros_like(attn)
    for i, n in enumerate(LENGTHS):
        sl = slice(0, n) if side == "right" else slice(WIDTH - n, WIDTH)
        hidden[i, sl], attn[i, sl], embed[i, sl] = real[i], 1, text[i]
    return hidden, embed, attn, real, text


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_left_and_right_padding_pool_the_same(mode):
    left, right = pool(*_batch("left")[:3], mode), pool(*_batch("right")[:3], mode)
    torch.testing.assert_close(left, right)
    assert left.abs().max() < 50  # no pad state leaked in


def test_mean_averages_only_text_tokens():
    hidden, embed, attn, real, text = _batch("right")
    expected = torch.stack([r[t.bool()].mean(0) for r, t in zip(real, text)])
    torch.testing.assert_close(pool(hidden, embed, attn, "mean"), expected)


def test_weighted_mean_weights_text_tokens_one_to_n():
    hidden, embed, attn, real, text = _batch("right")
    expected = []
    for r, t in zip(real, text):
        states = r[t.bool()]
        w = torch.arange(1, len(states) + 1, dtype=torch.float32)
        expected.append((states * w[:, None]).sum(0) / w.sum())
    torch.testing.assert_close(pool(hidden, embed, attn, "weighted_mean"), torch.stack(expected))


def test_last_and_first_token_modes_pick_the_real_ends():
    hidden, embed, attn, real, _ = _batch("left")
    torch.testing.assert_close(pool(hidden, embed, attn, "last_token"), torch.stack([r[-1] for r in real]))
    torch.testing.assert_close(pool(hidden, embed, attn, "bos_token"), torch.stack([r[0] for r in real]))


def test_pooling_is_float32_for_half_precision_states():
    hidden, embed, attn, _, _ = _batch("right")
    assert pool(hidden.bfloat16(), embed, attn, "mean").dtype == torch.float32


def test_unknown_mode_is_rejected_with_the_valid_ones():
    hidden, embed, attn, _, _ = _batch("right")
    with pytest.raises(ValueError, match="weighted_mean"):
        pool(hidden, embed, attn, "max")
