"""Chat-turn wrappers for the instruct checkpoints the LLM2Vec authors trained, keyed by base model id.

The reference wraps inputs of these models in their chat format (its `prepare_for_tokenization`), so
their published adapters expect it. We detect the base model from the `_name_or_path` recorded in the
checkpoint's config.json, as the reference does.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

TEMPLATES: dict[str, tuple[str, str]] = {
    "meta-llama/Meta-Llama-3-8B-Instruct": ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
    "mistralai/Mistral-7B-Instruct-v0.2": ("[INST] ", " [/INST]"),
    "meta-llama/Llama-2-7b-chat-hf": ("[INST] ", " [/INST]"),
    "google/gemma-2-9b-it": ("<bos><start_of_turn>user\n", "<end_of_turn>"),
    "Qwen/Qwen2-1.5B-Instruct": ("<|im_start|>user\n", "<|im_end|>"),
    "Qwen/Qwen2-7B-Instruct": ("<|im_start|>user\n", "<|im_end|>"),
}


def template_for(sources: Iterable[str]) -> tuple[str, str] | None:
    """The (prefix, suffix) for the first model folder or id among `sources` that has one, else None."""
    for source in sources:
        if source in TEMPLATES:
            return TEMPLATES[source]
        config = Path(source) / "config.json"
        if config.is_file():
            name = json.loads(config.read_text()).get("_name_or_path")
            if name in TEMPLATES:
                return TEMPLATES[name]
    return None
