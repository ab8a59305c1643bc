"""Test helpers that watch the real encoder without replacing it."""
from __future__ import annotations


def count_encode_calls(monkeypatch, encoder) -> list[int]:
    """Spy on the real encode of a SharedEncoder: record the number of texts of each call."""
    calls: list[int] = []
    real = encoder.llm2vec.encode

    def spy(sentences, *args, **kwargs):
        calls.append(len(sentences))
        return real(sentences, *args, **kwargs)

    monkeypatch.setattr(encoder.llm2vec, "encode", spy)
    return calls
