"""Instruction/text tokenization: one pass, offsets decide what is pooled, truncation and bad input."""
import warnings

import numpy as np
import pytest
from transformers import AutoTokenizer

from llm2vec_plugins.tokenization import split_sentences, tokenize_texts

INSTRUCTION = "Retrieve semantically similar text:"
TRICKY = ["!@#$%^&*() in the text", "[brackets] {braces} (parens)", "emoji 😀🎉 here", "中文字符 CJK", "   "]


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def _tok(tokenizer, instructions, texts, **kw):
    opts = dict(max_length=512, doc_max_length=400, skip_instruction=True, pooling_mode="mean") | kw
    return tokenize_texts(tokenizer, instructions, texts, **opts)


def test_instruction_tokens_are_attended_but_not_pooled(tokenizer):
    text = "A man is playing a guitar."
    (item,) = _tok(tokenizer, [INSTRUCTION], [text])
    n_instruction = len(tokenizer(INSTRUCTION, add_special_tokens=False)["input_ids"])
    assert item.embed_mask[:n_instruction].sum() == 0
    pooled = item.input_ids[item.embed_mask.astype(bool)]
    assert tokenizer.decode(pooled).strip() == text
    assert len(item) > item.embed_mask.sum()  # instruction tokens are in the input


@pytest.mark.parametrize("text", TRICKY)
def test_texts_with_symbols_emoji_cjk_or_only_whitespace_are_pooled_exactly(tokenizer, text):
    (item,) = _tok(tokenizer, [INSTRUCTION], [text])
    pooled = item.input_ids[item.embed_mask.astype(bool)]
    assert len(pooled) > 0
    assert tokenizer.decode(pooled) in (text, " " + text)


def test_without_instruction_all_text_tokens_are_pooled(tokenizer):
    (item,) = _tok(tokenizer, [""], ["plain text here"])
    assert item.embed_mask.all()


def test_skip_instruction_false_pools_every_token(tokenizer):
    (item,) = _tok(tokenizer, [INSTRUCTION], ["some text"], skip_instruction=False)
    assert item.embed_mask.all()


def test_doc_max_length_cuts_the_text_but_keeps_the_instruction(tokenizer):
    text = "word " * 300
    (item,) = _tok(tokenizer, [INSTRUCTION], [text], doc_max_length=20)
    (full,) = _tok(tokenizer, [INSTRUCTION], ["x"])
    assert item.embed_mask.sum() == 20
    n_instruction = len(full) - full.embed_mask.sum()
    assert np.array_equal(item.input_ids[:n_instruction], full.input_ids[:n_instruction])


def test_max_length_truncates_with_one_warning(tokenizer):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = _tok(tokenizer, ["", ""], ["word " * 100, "word " * 200], max_length=16)
    assert [len(i) for i in items] == [16, 16]
    assert len([w for w in caught if "truncated" in str(w.message)]) == 1


def test_eos_pooling_appends_eos_and_bos_pooling_prepends_bos(tokenizer):
    (eos_item,) = _tok(tokenizer, [""], ["hello"], pooling_mode="eos_token")
    (bos_item,) = _tok(tokenizer, [""], ["hello"], pooling_mode="bos_token")
    assert eos_item.input_ids[-1] == tokenizer.eos_token_id
    assert bos_item.input_ids[0] == tokenizer.bos_token_id
    assert eos_item.embed_mask[-1] == 0 and bos_item.embed_mask[0] == 0


def test_eos_is_kept_within_max_length(tokenizer):
    (item,) = _tok(tokenizer, [""], ["word " * 100], pooling_mode="eos_token", max_length=10)
    assert len(item) == 10 and item.input_ids[-1] == tokenizer.eos_token_id


@pytest.mark.parametrize(
    "bad,error,match",
    [
        ([None], TypeError, "sentence 0"),
        (["ok", 3], TypeError, "sentence 1"),
        ([["only one"]], ValueError, "exactly"),
        ([["a", "b", "c"]], ValueError, "exactly"),
        ([[None, "text"]], TypeError, "instruction of sentence 0"),
        ([["instr", None]], TypeError, "text of sentence 0"),
        (["fine", ""], ValueError, "sentence 1 is empty"),
        ("a bare string", TypeError, "wrap a single text"),
    ],
)
def test_bad_input_names_the_problem(bad, error, match):
    with pytest.raises(error, match=match):
        split_sentences(bad)


def test_pairs_may_be_lists_or_tuples():
    assert split_sentences([("i", "t"), ["j", "u"], "v"]) == (["i", "j", ""], ["t", "u", "v"])


def test_chat_template_prefix_is_attended_and_its_suffix_pooled_as_the_reference_does(tokenizer):
    text = "A man is playing a guitar."
    (item,) = _tok(tokenizer, [INSTRUCTION], [text + "  "], template=("[INST] ", " [/INST]"))
    pooled = item.input_ids[item.embed_mask.astype(bool)]
    # The reference pools the last len(tokens(text + suffix)) tokens: the closing tag is pooled.
    assert tokenizer.decode(pooled).strip() == text + " [/INST]"
    assert tokenizer.decode(item.input_ids).index("[INST]") < tokenizer.decode(item.input_ids).index(INSTRUCTION)


def test_chat_template_keeps_the_texts_leading_whitespace_like_the_reference(tokenizer):
    (item,) = _tok(tokenizer, [""], ["  a cat  "], template=("[INST] ", " [/INST]"))
    assert tokenizer.decode(item.input_ids).endswith("[INST]   a cat [/INST]")


def test_template_is_detected_from_the_checkpoint_config(tmp_path):
    import json

    from llm2vec_plugins.templates import template_for

    (tmp_path / "config.json").write_text(json.dumps({"_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2"}))
    assert template_for([str(tmp_path)]) == ("[INST] ", " [/INST]")
    assert template_for(["/nowhere", "gpt2"]) is None


# --- one tokenization: the pooled count without a second call, and windows of long texts -------------------

SPECIAL_TEXTS = ["plain words here", "<s> opens and </s> closes", "ends with </s>", "  padded  ", "x"]


@pytest.fixture(scope="module")
def bos_eos_tokenizer(tiny_tokenizer_dir):
    """The tiny tokenizer with a post-processor that adds BOS and EOS, as Llama 2 / Mistral style ones do."""
    from tokenizers.processors import TemplateProcessing

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    bos, eos = tok.bos_token_id, tok.eos_token_id
    tok.backend_tokenizer.post_processor = TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", bos),
                                                                                                     ("</s>", eos)])
    assert tok("a")["input_ids"][0] == bos and tok("a")["input_ids"][-1] == eos
    return tok


@pytest.mark.parametrize("which", ["plain", "bos_eos"])
def test_pooled_mask_follows_the_reference_rule_without_instruction(which, tokenizer, bos_eos_tokenizer):
    # The reference pools the last N tokens, N = the text tokenized alone. Without instruction this is
    # computed without a second tokenizer call; check it against that call, special-token strings included.
    tok = tokenizer if which == "plain" else bos_eos_tokenizer
    items = _tok(tok, [""] * len(SPECIAL_TEXTS), SPECIAL_TEXTS)
    for text, item in zip(SPECIAL_TEXTS, items):
        n = len(tok(text, add_special_tokens=False)["input_ids"])
        expected = np.ones(len(item), dtype=np.int64)
        if 0 < n < len(item):
            expected[: len(item) - n] = 0
        np.testing.assert_array_equal(item.embed_mask, expected, err_msg=text)


def _windows(tok, text, size, overlap, **kw):
    from llm2vec_plugins.tokenization import tokenize_windows

    opts = dict(max_length=512, doc_max_length=400, skip_instruction=True, pooling_mode="mean") | kw
    return tokenize_windows(tok, text, size, overlap, **opts)


LONG = " ".join(f"Sentence {i} talks about item {i} and the next one." for i in range(30))


def test_a_text_that_fits_is_one_window_tokenized_exactly_as_encode_does(bos_eos_tokenizer):
    (window,) = _windows(bos_eos_tokenizer, "A short text.", 32, 8, pooling_mode="eos_token")
    (expected,) = _tok(bos_eos_tokenizer, [""], ["A short text."], pooling_mode="eos_token")
    assert (window.start, window.end) == (0, len("A short text."))
    np.testing.assert_array_equal(window.tokens.input_ids, expected.input_ids)
    np.testing.assert_array_equal(window.tokens.embed_mask, expected.embed_mask)


@pytest.mark.parametrize("template", [None, ("[INST] ", " [/INST]")])
def test_long_text_windows_are_slices_of_its_one_tokenization(bos_eos_tokenizer, template):
    tok = bos_eos_tokenizer
    prefix, suffix = template or ("", "")
    windows = _windows(tok, LONG, 24, 6, template=template)
    assert len(windows) > 4
    assert windows[0].start == 0 and windows[-1].end == len(LONG)
    exact = 0
    for before, after in zip(windows, windows[1:]):
        assert after.start < before.end  # overlap
    for w in windows:
        # Every window is BOS + prefix + its slice of the text + suffix + EOS, token for token.
        assert tok.decode(w.tokens.input_ids) == "<s>" + prefix + LONG[w.start:w.end] + suffix + "</s>"
        body = tok(LONG[w.start:w.end], add_special_tokens=False)["input_ids"]
        assert len(body) <= 24 + 1
        # Where the slice tokenizes alone as it did in context, the window is exactly encode()'s input for it.
        (alone,) = _tok(tok, [""], [LONG[w.start:w.end]], template=template)
        if len(alone) == len(w.tokens) and (alone.input_ids == w.tokens.input_ids).all():
            np.testing.assert_array_equal(alone.embed_mask, w.tokens.embed_mask)
            exact += 1
    assert exact >= len(windows) // 2
