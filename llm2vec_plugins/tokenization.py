"""Text (+ optional instruction) -> token ids and the mask of tokens to pool, as the reference builds them.

The instruction and the text are joined as `"{instruction} {text}"` (as the reference does) and tokenized
once, with character offsets for cutting the text at `doc_max_length`. The pooled tokens are the last N,
N being the token count of the text (plus a chat template's suffix) tokenized on its own: the reference's
rule, which its published adapters were trained with. No separator string is inserted, so any text
(brackets, emoji, CJK, `!@#$%^&*()`) is safe.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llm2vec_plugins.config import PoolingMode

Sentence = str | Sequence[str]


@dataclass
class TokenizedText:
    """One encoder input: its token ids and which of them are pooled (1) or only attended (0)."""

    input_ids: np.ndarray
    embed_mask: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def split_sentences(sentences: Sequence[Sentence]) -> tuple[list[str], list[str]]:
    """Validate encode() input and split it into (instructions, texts).

    A sentence is a string or an `[instruction, text]` pair. Errors name the offending index.
    """
    if isinstance(sentences, str):
        raise TypeError("encode() takes a list of texts; wrap a single text in a list: [text]")
    instructions, texts = [], []
    for i, sentence in enumerate(sentences):
        if isinstance(sentence, str):
            instruction, text = "", sentence
        elif isinstance(sentence, (list, tuple)):
            if len(sentence) != 2:
                raise ValueError(
                    f"sentence {i} is a {type(sentence).__name__} of {len(sentence)} items; "
                    "an instruction pair must be exactly [instruction, text]"
                )
            instruction, text = sentence
            if not isinstance(instruction, str):
                raise TypeError(f"instruction of sentence {i} must be a str, got {type(instruction).__name__}")
        else:
            raise TypeError(
                f"sentence {i} must be a str or an [instruction, text] pair, got {type(sentence).__name__}"
            )
        if not isinstance(text, str):
            raise TypeError(f"text of sentence {i} must be a str, got {type(text).__name__}")
        if text == "":
            raise ValueError(f"text of sentence {i} is empty; an empty text has no embedding")
        instructions.append(instruction)
        texts.append(text)
    return instructions, texts


def tokenize_texts(
    tokenizer,
    instructions: Sequence[str],
    texts: Sequence[str],
    *,
    max_length: int,
    doc_max_length: int,
    skip_instruction: bool,
    pooling_mode: PoolingMode,
    template: tuple[str, str] | None = None,
) -> list[TokenizedText]:
    """Tokenize instruction/text pairs in one batched call and mark the pooled tokens.

    - The text part is cut to `doc_max_length` tokens and the whole input to `max_length` tokens
      (one warning per call when anything is cut).
    - eos_token pooling appends the tokenizer's EOS id (when the tokenizer did not add it);
      bos_token pooling prepends BOS likewise, so the pooled token really is that token.
    - `template` = (prefix, suffix) wraps the input in a chat turn (instruct checkpoints). As in the
      reference, the prefix is attended only and the suffix (e.g. Llama 3's `<|eot_id|>`) is pooled with
      the text: the reference pools the last tokens of "text + suffix", and its published adapters were
      trained that way.
    - A text whose characters produce no token of their own (only whitespace, with some tokenizers)
      is pooled over all its input tokens rather than yielding an empty mean.
    """
    if not texts:
        return []
    prefix, suffix = template or ("", "")
    joined, starts, stops = [], [], []
    for instruction, text in zip(instructions, texts):
        instruction = instruction.strip()
        if template:  # the reference strips the wrapped "instruction <separator>text": the text's end only
            text = text.rstrip()
        body = f"{instruction} {text}" if instruction else text
        joined.append(prefix + body + suffix)
        starts.append(len(prefix) + (len(instruction) + 1 if instruction else 0))
        stops.append(len(prefix) + len(body))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sequence longer than model_max_length": we cut below
        encoded = tokenizer(
            joined,
            add_special_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            verbose=False,
        )
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if pooling_mode == "eos_token" and eos is None:
        raise ValueError("pooling_mode='eos_token' needs a tokenizer with an EOS token")
    if pooling_mode == "bos_token" and bos is None:
        raise ValueError("pooling_mode='bos_token' needs a tokenizer with a BOS token")
    # Room kept for the token this pooling mode appends or prepends.
    reserve = 1 if pooling_mode in ("eos_token", "bos_token") else 0
    kept, pooled_parts, truncated = [], [], 0
    for text_input, ids, offsets, special, start, stop in zip(
        joined, encoded["input_ids"], encoded["offset_mapping"], encoded["special_tokens_mask"], starts, stops
    ):
        ids = np.asarray(ids, dtype=np.int64)
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
        in_text = ~np.asarray(special, dtype=bool) & (offsets[:, 1] > start) & (offsets[:, 0] < stop)
        keep = np.ones(len(ids), dtype=bool)
        if int(in_text.sum()) > doc_max_length:
            keep &= ~(in_text & (np.cumsum(in_text) > doc_max_length))
        if keep.sum() + reserve > max_length:
            keep &= np.cumsum(keep) <= max_length - reserve
        text_end = stop
        if not keep.all():
            truncated += 1
            kept_text = np.flatnonzero(in_text & keep)
            text_end = int(offsets[kept_text[-1], 1]) if len(kept_text) else start
        kept.append(ids[keep])
        # What the reference pools: the text (what follows the instruction) and the chat turn's suffix.
        pooled_parts.append(text_input[start:text_end] + suffix)
    # The reference pools the last N tokens, N being the token count of that part tokenized on its own
    # (one batched call). Where the instruction and the text meet, N can differ by a token from the
    # text's own tokens in context; its published adapters were trained on exactly this mask.
    counts = [len(c) for c in tokenizer(pooled_parts, add_special_tokens=False, return_attention_mask=False,
                                        verbose=False)["input_ids"]] if skip_instruction else [0] * len(kept)
    out = []
    for ids, count in zip(kept, counts):
        pooled = np.ones(len(ids), dtype=bool)
        if skip_instruction and 0 < count < len(ids):
            pooled[: len(ids) - count] = False
        if pooling_mode == "eos_token" and (len(ids) == 0 or ids[-1] != eos):
            ids, pooled = np.append(ids, eos), np.append(pooled, False)
        if pooling_mode == "bos_token" and (len(ids) == 0 or ids[0] != bos):
            ids, pooled = np.insert(ids, 0, bos), np.insert(pooled, 0, False)
        out.append(TokenizedText(ids, pooled.astype(np.int64)))
    if truncated:
        warnings.warn(
            f"{truncated} of {len(out)} texts were longer than max_length={max_length} tokens "
            f"(or their text part than doc_max_length={doc_max_length}) and were truncated",
            stacklevel=3,
        )
    return out
