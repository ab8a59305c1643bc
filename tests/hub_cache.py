"""A local Hugging Face hub cache holding tiny random models in the published LLM2Vec repos' layout.

McGill-NLP publishes, per base model, a `-mntp` repo (a LoRA adapter on the decoder, plus the base's
config.json and tokenizer; its adapter_config names the base repo) and a `-supervised` /
`-unsup-simcse` repo (only an adapter, whose adapter_config names the `-mntp` repo). Loading these by
hub id with `HF_HUB_CACHE=<dir> HF_HUB_OFFLINE=1` runs exactly the code path online users run.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from tests.tiny_models import build_tiny_model

# family -> (tiny architecture, the base repo id the adapters name, the -mntp repo id); Llama 3 and
# Mistral carry the published ids (the README's examples run on them)
FAMILIES = {
    "llama": ("llama", "meta-llama/Meta-Llama-3-8B-Instruct", "McGill-NLP/LLM2Vec-Meta-Llama-3-8B-Instruct-mntp"),
    "mistral": ("mistral", "mistralai/Mistral-7B-Instruct-v0.2", "McGill-NLP/LLM2Vec-Mistral-7B-Instruct-v2-mntp"),
    "gemma": ("gemma2", "google/gemma-2-9b-it", "McGill-NLP/LLM2Vec-Gemma-2-9B-it-mntp"),
    "qwen2": ("qwen2", "Qwen/Qwen2-1.5B-Instruct", "McGill-NLP/LLM2Vec-Qwen2-1.5B-Instruct-mntp"),
}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class PublishedFamily:
    """Hub ids of one family's repos in the cache."""

    base: str
    mntp: str
    supervised: str


def _snapshot(cache: Path, repo_id: str, revision: str = "main") -> Path:
    """The folder models--ORG--NAME/snapshots/<sha>/ of `repo_id` at `revision` (made, with its ref, if new)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    sha = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(sha)
    return snapshot


def _random_adapter(base_dir: Path, out: Path, base_name: str, seed: int, merged_first: Path | None = None) -> None:
    """A LoRA adapter with random (non-zero) A and B on the decoder of the model in `base_dir`."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModel

    model = AutoModel.from_pretrained(base_dir)
    if merged_first is not None:  # a supervised adapter is trained on top of the merged MNTP model
        model = PeftModel.from_pretrained(model, merged_first).merge_and_unload()
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS, init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # make the update large enough to move embeddings clearly
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(out)
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = base_name
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))


def build_published_family(cache: Path, family: str, tokenizer_dir: Path, work: Path) -> PublishedFamily:
    """Write `family`'s base, -mntp and -mntp-supervised repos into the hub cache folder `cache`."""
    arch, base_id, mntp_id = FAMILIES[family]
    ids = PublishedFamily(base_id, mntp_id, f"{mntp_id}-supervised")
    base_dir = build_tiny_model(arch, work / f"{family}-base", tokenizer_dir)
    config = json.loads((base_dir / "config.json").read_text())
    config["_name_or_path"] = base_id  # as in the published config.json files
    (base_dir / "config.json").write_text(json.dumps(config, indent=2))

    base_snapshot = _snapshot(cache, base_id)
    for item in base_dir.iterdir():
        shutil.copy(item, base_snapshot / item.name)

    mntp_dir = work / f"{family}-mntp"
    _random_adapter(base_dir, mntp_dir, base_id, seed=1)
    mntp_snapshot = _snapshot(cache, ids.mntp)
    for item in mntp_dir.iterdir():
        shutil.copy(item, mntp_snapshot / item.name)
    shutil.copy(base_dir / "config.json", mntp_snapshot / "config.json")
    for item in base_dir.glob("*token*"):
        shutil.copy(item, mntp_snapshot / item.name)

    supervised_dir = work / f"{family}-supervised"
    _random_adapter(base_dir, supervised_dir, ids.mntp, seed=2, merged_first=mntp_dir)
    supervised_snapshot = _snapshot(cache, ids.supervised)
    for item in supervised_dir.iterdir():
        shutil.copy(item, supervised_snapshot / item.name)
    return ids
