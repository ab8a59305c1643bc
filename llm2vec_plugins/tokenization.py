"""Text (+ optional instruction) -> token ids and the mask of tokens to pool, as the reference builds them.

The instruction and the text are joined as `"{instruction} {text}"` (as the reference does) and tokenized
once, with character offsets for cutting the text at `doc_max_length`. The pooled tokens are the last N,
N being the token count of the text (plus a chat template's suffix) tokenized on its own: the reference's
rule, which its published adapters were trained with. No separator string is inserted, so any text
(brackets, emoji, CJK, `!@#$%^&*()`) is safe. `tokenize_windows` cuts one long text, tokenized once, into
overlapping encoder inputs (chunked ingestion); `InputTokenizer` binds a tokenizer to an encoder's settings.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class InputTokenizer:
    """An encoder's tokenizer together with the settings that decide its inputs (lengths, pooling,
    instruction handling, chat template): what `LLM2Vec.encode` runs on sentences, usable apart from the
    model, e.g. to tokenize once in a chunker or a server and hand `encode` the `TokenizedText` items.

    Example:
        >>> items = model.input_tokenizer(["a cat", ["Retrieve similar text:", "a dog"]])
        >>> model.encode(items)  # the same rows as model.encode(["a cat", [...]])
    """

    tokenizer: Any
    max_length: int = 512
    doc_max_length: int = 400
    skip_instruction: bool = True
    pooling_mode: PoolingMode = "mean"
    template: tuple[str, str] | None = None

    def __call__(self, sentences: Sequence[Sentence]) -> list[TokenizedText]:
        """Validate sentences (see `split_sentences`) and tokenize them in one batched call."""
        instructions, texts = split_sentences(sentences)
        return tokenize_texts(self.tokenizer, instructions, texts, **self._settings())

    def windows(self, text: str, size: int, overlap: int) -> list[Window]:
        """`tokenize_windows` of one text with these settings."""
        return tokenize_windows(self.tokenizer, text, size, overlap, **self._settings())

    def _settings(self) -> dict[str, Any]:
        return dict(max_length=self.max_length, doc_max_length=self.doc_max_length,
                    skip_instruction=self.skip_instruction, pooling_mode=self.pooling_mode, template=self.template)


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
    rules = _Rules(tokenizer, max_length, doc_max_length, skip_instruction, pooling_mode, template)
    return rules.build(rules.tokenize(instructions, texts))


@dataclass(frozen=True)
class Window:
    """One window of a long text: `text[start:end]`, and its encoder input `tokens`."""

    start: int
    end: int
    tokens: TokenizedText


def tokenize_windows(
    tokenizer,
    text: str,
    size: int,
    overlap: int,
    *,
    max_length: int,
    doc_max_length: int,
    skip_instruction: bool,
    pooling_mode: PoolingMode,
    template: tuple[str, str] | None = None,
) -> list[Window]:
    """Tokenize a text ONCE and cut it into encoder inputs of at most `size` text tokens, each overlapping
    the previous one by `overlap` tokens (what chunked ingestion embeds).

    A text of at most `size` tokens gives one window whose tokens are exactly `tokenize_texts` of it, so
    its vector is `encode([text])`. A longer text's windows take their tokens from the text's own
    tokenization, wrapped in the same special tokens and chat template as a whole input: in context,
    which at a cut can differ by a token from tokenizing the window's text alone. `start`/`end` are
    character offsets into `text`, at token boundaries.

    Example:
        >>> [(w.start, w.end) for w in tokenize_windows(tok, long_text, 256, 32, max_length=512,
        ...     doc_max_length=400, skip_instruction=True, pooling_mode="mean")]
        [(0, 1021), (890, 1873)]
    """
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got size={size}, overlap={overlap}")
    rules = _Rules(tokenizer, max_length, doc_max_length, skip_instruction, pooling_mode, template)
    (item,) = rules.tokenize([""], [text])
    words = np.flatnonzero(item.in_text & (item.offsets[:, 1] > item.offsets[:, 0]))
    shift = len(rules.prefix)  # joined = prefix + text + suffix
    if len(words) <= size:
        return [Window(0, len(text), rules.build([item])[0])]
    head = np.arange(words[0])  # special tokens and the template's prefix
    tail = np.arange(words[-1] + 1, len(item.ids))  # the template's suffix and special tokens
    pooled_tail = int((~item.added[tail]).sum())  # the suffix is pooled with the text, as in tokenize_texts
    windows, truncated = [], 0
    step = size - overlap
    for first in range(0, len(words), step):
        lo, hi = words[first], words[min(first + size, len(words)) - 1]
        ids = np.concatenate([item.ids[head], item.ids[lo:hi + 1], item.ids[tail]])
        keep = np.ones(len(ids), dtype=bool)
        if len(ids) + rules.reserve > max_length:
            keep = np.cumsum(keep) <= max_length - rules.reserve
            truncated += 1
        count = int(keep[len(head):].sum()) - len(tail) + pooled_tail if skip_instruction else 0
        windows.append(Window(int(item.offsets[lo, 0]) - shift, int(item.offsets[hi, 1]) - shift,
                              rules.finish(ids[keep], max(count, 0))))
        if first + size >= len(words):
            break
    _warn_truncated(truncated, len(windows), max_length, doc_max_length)
    return windows


@dataclass
class _Input:
    """One joined input as the tokenizer returned it, before cutting."""

    joined: str
    ids: np.ndarray
    offsets: np.ndarray
    added: np.ndarray  # tokens the tokenizer added itself (BOS, EOS...): special and of zero width
    in_text: np.ndarray  # tokens of the text part (not the instruction, template or special tokens)
    start: int  # the text part is joined[start:stop]
    stop: int


@dataclass(frozen=True)
class _Rules:
    """The reference's input rules for one tokenizer and encoder settings (shared by texts and windows)."""

    tokenizer: object
    max_length: int
    doc_max_length: int
    skip_instruction: bool
    pooling_mode: PoolingMode
    template: tuple[str, str] | None

    @property
    def prefix(self) -> str:
        return self.template[0] if self.template else ""

    @property
    def suffix(self) -> str:
        return self.template[1] if self.template else ""

    @property
    def reserve(self) -> int:
        """Room kept for the token this pooling mode appends or prepends."""
        return 1 if self.pooling_mode in ("eos_token", "bos_token") else 0

    def tokenize(self, instructions: Sequence[str], texts: Sequence[str]) -> list[_Input]:
        joined, starts, stops = [], [], []
        for instruction, text in zip(instructions, texts):
            instruction = instruction.strip()
            if self.template:  # the reference strips the wrapped "instruction <separator>text": the text's end only
                text = text.rstrip()
            body = f"{instruction} {text}" if instruction else text
            joined.append(self.prefix + body + self.suffix)
            starts.append(len(self.prefix) + (len(instruction) + 1 if instruction else 0))
            stops.append(len(self.prefix) + len(body))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sequence longer than model_max_length": we cut later
            encoded = self.tokenizer(joined, add_special_tokens=True, return_offsets_mapping=True,
                                     return_special_tokens_mask=True, return_attention_mask=False, verbose=False)
        tokenizer = self.tokenizer
        if self.pooling_mode == "eos_token" and tokenizer.eos_token_id is None:
            raise ValueError("pooling_mode='eos_token' needs a tokenizer with an EOS token")
        if self.pooling_mode == "bos_token" and tokenizer.bos_token_id is None:
            raise ValueError("pooling_mode='bos_token' needs a tokenizer with a BOS token")
        out = []
        for text_input, ids, offsets, special, start, stop in zip(
            joined, encoded["input_ids"], encoded["offset_mapping"], encoded["special_tokens_mask"], starts, stops
        ):
            offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
            special = np.asarray(special, dtype=bool)
            in_text = ~special & (offsets[:, 1] > start) & (offsets[:, 0] < stop)
            added = special & (offsets[:, 0] == offsets[:, 1])
            out.append(_Input(text_input, np.asarray(ids, dtype=np.int64), offsets, added, in_text, start, stop))
        return out

    def cut(self, item: _Input) -> tuple[np.ndarray, int | None]:
        """Which tokens stay under doc_max_length / max_length, and where the kept text ends (None: all kept)."""
        keep = np.ones(len(item.ids), dtype=bool)
        if int(item.in_text.sum()) > self.doc_max_length:
            keep &= ~(item.in_text & (np.cumsum(item.in_text) > self.doc_max_length))
        if keep.sum() + self.reserve > self.max_length:
            keep &= np.cumsum(keep) <= self.max_length - self.reserve
        if keep.all():
            return keep, None
        kept_text = np.flatnonzero(item.in_text & keep)
        return keep, int(item.offsets[kept_text[-1], 1]) if len(kept_text) else item.start

    def build(self, inputs: list[_Input]) -> list[TokenizedText]:
        """Cut each input to the length limits and mark its pooled tokens (one warning if any was cut)."""
        cuts = [self.cut(item) for item in inputs]
        # The reference pools the last N tokens, N being the token count of the pooled part (the text, plus a
        # chat template's suffix) tokenized on its own: its published adapters were trained on exactly this
        # mask. Where the instruction and the text meet, N can differ by a token from the text's own tokens in
        # context, so it is counted by a second tokenizer call, except where the pooled part is the whole
        # input as it was tokenized (no instruction, no template, nothing cut): then N is that input's tokens
        # minus the ones the tokenizer added itself.
        counts: list[int] = [0] * len(inputs)
        recount = []
        for i, (item, (keep, text_end)) in enumerate(zip(inputs, cuts)):
            if not self.skip_instruction:
                continue
            if item.start == 0 and not self.template and text_end is None:
                counts[i] = int((~item.added[keep]).sum())
            else:
                recount.append(i)
        if recount:
            ends = [inputs[i].stop if cuts[i][1] is None else cuts[i][1] for i in recount]
            parts = [inputs[i].joined[inputs[i].start:end] + self.suffix for i, end in zip(recount, ends)]
            encoded = self.tokenizer(parts, add_special_tokens=False, return_attention_mask=False, verbose=False)
            for i, ids in zip(recount, encoded["input_ids"]):
                counts[i] = len(ids)
        out = [self.finish(item.ids[keep], count) for item, (keep, _), count in zip(inputs, cuts, counts)]
        _warn_truncated(sum(text_end is not None for _, text_end in cuts), len(out), self.max_length,
                        self.doc_max_length)
        return out

    def finish(self, ids: np.ndarray, count: int) -> TokenizedText:
        """Pool the last `count` tokens (all when 0 or when every token is counted), add EOS / BOS."""
        bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        pooled = np.ones(len(ids), dtype=bool)
        if self.skip_instruction and 0 < count < len(ids):
            pooled[: len(ids) - count] = False
        if self.pooling_mode == "eos_token" and (len(ids) == 0 or ids[-1] != eos):
            ids, pooled = np.append(ids, eos), np.append(pooled, False)
        if self.pooling_mode == "bos_token" and (len(ids) == 0 or ids[0] != bos):
            ids, pooled = np.insert(ids, 0, bos), np.insert(pooled, 0, False)
        return TokenizedText(ids, pooled.astype(np.int64))


def _warn_truncated(truncated: int, total: int, max_length: int, doc_max_length: int) -> None:
    if truncated:
        warnings.warn(
            f"{truncated} of {total} texts were longer than max_length={max_length} tokens "
            f"(or their text part than doc_max_length={doc_max_length}) and were truncated",
            stacklevel=6,  # encode() (via build, tokenize_texts, InputTokenizer and LLM2Vec._tokenize)
        )
