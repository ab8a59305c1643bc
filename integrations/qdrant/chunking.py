"""Split long texts into overlapping chunks of at most N tokens of the encoder's own tokenizer.

Chunks are cut at token boundaries but returned as exact slices of the original text (via the fast
tokenizer's character offsets), so stored chunk text is what the user wrote, not a detokenized copy. Each
chunk also carries its encoder input (`tokens`): the document is tokenized once, and `encode` takes those
inputs as they are, never tokenizing the chunk again.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from llm2vec_plugins.tokenization import InputTokenizer, TokenizedText


@dataclass(frozen=True)
class Chunk:
    """A slice `text == source_text[start:end]` of a document; `index` counts from 0 in the document;
    `tokens` is its encoder input (see `tokenize_windows`)."""

    index: int
    text: str
    start: int
    end: int
    tokens: TokenizedText | None = field(default=None, compare=False, repr=False)


class TokenChunker:
    """Cut texts into windows of `chunk_tokens` tokens, each overlapping the previous by `overlap` tokens.

    `tokenizer` is the encoder's `input_tokenizer` (a bare Hugging Face tokenizer gets the default encoder
    settings). A text that fits in one window gives one chunk equal to the stripped text, whose tokens are
    exactly what `encode([text])` would use. Windows should not exceed the encoder's `doc_max_length`, or
    the encoder truncates them.

    Example:
        >>> chunker = TokenChunker(model.input_tokenizer, chunk_tokens=256, overlap=32)
        >>> [c.index for c in chunker.split(long_text)]
        [0, 1, 2]
        >>> model.encode([c.tokens for c in chunker.split(long_text)]).shape
        (3, 576)
    """

    def __init__(self, tokenizer: InputTokenizer, chunk_tokens: int = 256, overlap: int = 32) -> None:
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
        if not 0 <= overlap < chunk_tokens:
            raise ValueError(f"overlap must be in [0, chunk_tokens={chunk_tokens}), got {overlap}")
        if not isinstance(tokenizer, InputTokenizer):
            tokenizer = InputTokenizer(tokenizer)
        if not getattr(tokenizer.tokenizer, "is_fast", False):
            raise ValueError("chunking needs a fast (Rust) tokenizer for character offsets; "
                             f"{type(tokenizer.tokenizer).__name__} is not one")
        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap

    def split(self, text: str) -> list[Chunk]:
        """The chunks of one text, in order; [] for a blank text."""
        stripped = text.strip()
        if not stripped:
            return []
        offset = text.index(stripped[0])
        return [Chunk(i, stripped[w.start:w.end], offset + w.start, offset + w.end, w.tokens)
                for i, w in enumerate(self.tokenizer.windows(stripped, self.chunk_tokens, self.overlap))]
