"""Split long texts into overlapping chunks of at most N tokens of the encoder's own tokenizer.

Chunks are cut at token boundaries but returned as exact slices of the original text (via the fast
tokenizer's character offsets), so stored chunk text is what the user wrote, not a detokenized copy.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """A slice `text == source_text[start:end]` of a document; `index` counts from 0 in the document."""

    index: int
    text: str
    start: int
    end: int


class TokenChunker:
    """Cut texts into windows of `chunk_tokens` tokens, each overlapping the previous by `overlap` tokens.

    A text that fits in one window gives one chunk equal to the stripped text. Windows should not exceed
    the encoder's `doc_max_length`, or the encoder silently truncates them.

    Example:
        >>> chunker = TokenChunker(model.tokenizer, chunk_tokens=256, overlap=32)
        >>> [c.index for c in chunker.split(long_text)]
        [0, 1, 2]
    """

    def __init__(self, tokenizer, chunk_tokens: int = 256, overlap: int = 32) -> None:
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
        if not 0 <= overlap < chunk_tokens:
            raise ValueError(f"overlap must be in [0, chunk_tokens={chunk_tokens}), got {overlap}")
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("chunking needs a fast (Rust) tokenizer for character offsets; "
                             f"{type(tokenizer).__name__} is not one")
        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap

    def split(self, text: str) -> list[Chunk]:
        """The chunks of one text, in order; [] for a blank text."""
        stripped = text.strip()
        if not stripped:
            return []
        offset = text.index(stripped[0])
        encoding = self.tokenizer(stripped, add_special_tokens=False, return_offsets_mapping=True,
                                  return_attention_mask=False, verbose=False)
        spans = [(s, e) for s, e in encoding["offset_mapping"] if e > s]
        if len(spans) <= self.chunk_tokens:
            return [Chunk(0, stripped, offset, offset + len(stripped))]
        chunks = []
        step = self.chunk_tokens - self.overlap
        for index, first in enumerate(range(0, len(spans), step)):
            window = spans[first:first + self.chunk_tokens]
            start, end = window[0][0], window[-1][1]
            chunks.append(Chunk(index, stripped[start:end], offset + start, offset + end))
            if first + self.chunk_tokens >= len(spans):
                break
        return chunks
