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


def template_for(sources: Iterable[str], **hub_kwargs) -> tuple[str, str] | None:
    """The (prefix, suffix) for the first model folder or hub id among `sources` that has one, else None.

    A source matches by its own id, or by the `_name_or_path` its config.json records (the published
    `-mntp` repos and folders written by `LLM2Vec.save` keep the original base id there).
    """
    name = template_name(sources, **hub_kwargs)
    return TEMPLATES[name] if name else None


def template_name(sources: Iterable[str], **hub_kwargs) -> str | None:
    """The TEMPLATES key that `sources` (folders or hub ids, base first) resolve to, else None."""
    from llm2vec_plugins.loading import repo_file

    for source in sources:
        if source in TEMPLATES:
            return source
        config = repo_file(source, "config.json", **hub_kwargs)
        if config is not None:
            name = json.loads(Path(config).read_text()).get("_name_or_path")
            if name in TEMPLATES:
                return name
    return None


def name_for_template(template: tuple[str, str] | None) -> str | None:
    """A model id whose template is `template`, to record as `_name_or_path` when saving (the
    reference picks its chat template by that id)."""
    return next((name for name, value in TEMPLATES.items() if value == template), None)
