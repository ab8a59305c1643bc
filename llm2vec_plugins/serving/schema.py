"""The OpenAI embeddings API as pydantic models, plus the LLM2Vec extension (instructions).

A request is OpenAI's (`input`, `model`, `encoding_format`, `dimensions`, `user`) plus two optional
fields: `instruction` (attended to, not pooled) or `input_type` ("query" / "document": the server's
instruction for that kind). An `input` item may also be an `[instruction, text]` pair. Unknown fields
are refused, so a misspelt option is an error rather than silently ignored.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator
from pydantic_core import PydanticCustomError

from llm2vec_plugins.tokenization import Sentence

TOKEN_IDS_HINT = (
    "this server takes text, not token ids (ids made by an OpenAI client are tiktoken ids, not this "
    "model's); with LangChain's OpenAIEmbeddings pass check_embedding_ctx_length=False"
)


class EmbeddingRequest(BaseModel):
    """POST /v1/embeddings.

    Example:
        >>> EmbeddingRequest(input=["a text", ["Retrieve similar text:", "another"]], model="llm2vec")
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    input: str | list[str | list[str]]
    """One text, or a list of texts and `[instruction, text]` pairs (LLM2Vec extension)."""
    model: str | None = None
    """A model id of GET /v1/models; `NAME:query` embeds under the query instruction. None: the served model."""
    encoding_format: Literal["float", "base64"] = "float"
    """`base64`: little-endian float32 bytes, as the openai client asks by default."""
    dimensions: PositiveInt | None = None
    """Only the model's own dimension is accepted: LLM2Vec embeddings are not trained to be truncated."""
    user: str | None = None
    """Accepted for compatibility, not used."""
    instruction: str | None = None
    """LLM2Vec extension: instruction for every plain-text item (attended to, not pooled)."""
    input_type: Literal["query", "document"] | None = None
    """LLM2Vec extension: use the server's query or document instruction (default: document)."""

    @field_validator("input", mode="before")
    @classmethod
    def _check_input(cls, value):
        # Checked by hand: pydantic's union errors ("input.str ... input.list[...]") do not say what to do.
        if isinstance(value, str):
            if not value:
                raise PydanticCustomError("empty_text", "input is an empty string; an empty text has no embedding")
            return value
        if not isinstance(value, list):
            raise PydanticCustomError(
                "input_type", "input must be a string or a list of strings, got {kind}", {"kind": _kind(value)})
        if not value:
            raise PydanticCustomError("empty_input", "input is an empty list; send at least one text")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise PydanticCustomError("token_ids", "input is a list of integers: " + TOKEN_IDS_HINT)
        for i, item in enumerate(value):
            _check_item(i, item)
        return value


def _check_item(i: int, item) -> None:
    if isinstance(item, str):
        if not item:
            raise PydanticCustomError("empty_text", "input[{i}] is an empty string; an empty text has no embedding",
                                      {"i": i})
        return
    if isinstance(item, list):
        if item and all(isinstance(v, int) and not isinstance(v, bool) for v in item):
            raise PydanticCustomError("token_ids", "input[{i}] is a list of integers: " + TOKEN_IDS_HINT, {"i": i})
        if len(item) != 2 or not all(isinstance(v, str) for v in item):
            raise PydanticCustomError(
                "pair", "input[{i}] must be a string or an [instruction, text] pair of two strings", {"i": i})
        if not item[1]:
            raise PydanticCustomError("empty_text", "input[{i}] has an empty text; an empty text has no embedding",
                                      {"i": i})
        return
    raise PydanticCustomError("item_type", "input[{i}] must be a string or an [instruction, text] pair, got {kind}",
                              {"i": i, "kind": _kind(item)})


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def to_sentences(request: EmbeddingRequest, instruction: str | None) -> list[Sentence]:
    """The request's input as encoder sentences: pairs keep their own instruction, plain texts get
    `instruction` (none when it is None or empty)."""
    items = [request.input] if isinstance(request.input, str) else request.input
    return [item if isinstance(item, list) else ([instruction, item] if instruction else item) for item in items]


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    """Tokens the encoder read (instruction, text and special tokens, after truncation)."""
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "llm2vec-plugins"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error shape, which its clients turn into typed exceptions (BadRequestError, ...)."""

    error: ErrorBody = Field(...)
