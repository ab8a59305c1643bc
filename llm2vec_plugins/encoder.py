"""`LLM2Vec`: a decoder-only LLM used as a bidirectional text encoder (drop-in for the reference API)."""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from llm2vec_plugins.attention import set_bidirectional, verify_attention
from llm2vec_plugins.batching import TokenBudgetBatcher, pack_batch, pad_batch
from llm2vec_plugins.config import LLM2VecConfig, PoolingMode
from llm2vec_plugins.loading import HUB_KWARGS, attach_adapter, load_base_model, without_revision
from llm2vec_plugins.pooling import pool, pooling_weights
from llm2vec_plugins.pruning import num_layers as depth_of
from llm2vec_plugins.templates import name_for_template, template_for
from llm2vec_plugins.tokenization import InputTokenizer, Sentence, TokenizedText


class LLM2Vec(nn.Module):
    """A decoder LLM turned text encoder: bidirectional attention + pooling over the text's tokens.

    Sentences are strings or `[instruction, text]` pairs; the instruction is attended to but, with
    `skip_instruction=True`, left out of the pooled mean.

    Example:
        >>> from llm2vec_plugins import LLM2Vec
        >>> model = LLM2Vec.from_pretrained("smollm2-135m-llm2vec")
        >>> q = model.encode([["Retrieve passages that answer the question:", "what is LoRA?"]])
        >>> d = model.encode(["LoRA adds low-rank matrices to frozen weights."], normalize_embeddings=True)
        >>> q.shape, q.dtype
        ((1, 576), dtype('float32'))
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        pooling_mode: PoolingMode = "mean",
        max_length: int = 512,
        doc_max_length: int = 400,
        skip_instruction: bool = True,
        template: tuple[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.settings = LLM2VecConfig(pooling_mode, max_length, doc_max_length, skip_instruction)
        self.config = model.config
        # (prefix, suffix) of the chat turn an instruct checkpoint was trained with; see templates.py.
        self.template = template
        # Devices encode() spreads batches over (one model replica each); None: all visible GPUs when
        # the model sits on one GPU, else just the model's device.
        self.data_parallel_devices: list[torch.device] | None = None
        self._replicas: dict[tuple[int, torch.device], tuple[int, nn.Module]] = {}
        self._adapter_on_merged_weights = False
        self.source: tuple[str | None, str | None] = (getattr(model, "name_or_path", None), None)  # (model, adapter)

    # The reference exposes these as attributes; keep them readable and writable.
    pooling_mode = property(lambda self: self.settings.pooling_mode, lambda self, v: self._set("pooling_mode", v))
    max_length = property(lambda self: self.settings.max_length, lambda self, v: self._set("max_length", v))
    doc_max_length = property(lambda self: self.settings.doc_max_length, lambda self, v: self._set("doc_max_length", v))
    skip_instruction = property(lambda self: self.settings.skip_instruction, lambda self, v: self._set("skip_instruction", v))

    def _set(self, name: str, value) -> None:
        values = vars(self.settings) | {name: value}
        self.settings = LLM2VecConfig(**values)  # re-validates

    def with_settings(self, **changes) -> LLM2Vec:
        """A view of this encoder with other settings (pooling, lengths), sharing weights and chat template.

        Example:
            >>> short = model.with_settings(max_length=128, doc_max_length=128)
        """
        view = LLM2Vec(self.model, self.tokenizer, **(vars(self.settings) | changes), template=self.template)
        view.data_parallel_devices = self.data_parallel_devices
        view.source = self.source
        return view

    @classmethod
    def from_pretrained(
        cls,
        base_model_name_or_path: str | os.PathLike,
        peft_model_name_or_path: str | os.PathLike | None = None,
        merge_peft: bool = False,
        enable_bidirectional: bool = True,
        *,
        pooling_mode: PoolingMode | None = None,
        max_length: int | None = None,
        doc_max_length: int | None = None,
        skip_instruction: bool | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        trust_remote_code: bool = False,
        verify_bidirectional: bool = True,
        num_layers: int | None = None,
        **hf_kwargs,
    ) -> LLM2Vec:
        """Load an encoder from a hub id, a local folder, a .gguf file or an alias, plus optional LoRA.

        Weights load straight onto `device` (default: CUDA when available, else CPU) in `dtype`
        (default float32); the reference's `torch_dtype=` and `device_map=` keywords work as in
        transformers. `token` / `revision` / `cache_dir` reach every file this loads. Encoder settings
        left as None come from `llm2vec_config.json` (in the peft adapter if given, else in the base),
        else the reference defaults (mean, 512, 400, True). When `verify_bidirectional` is on, tiny
        forward passes (batch 1 and 2, padded and unpadded) prove that attention is really
        bidirectional (or really causal when `enable_bidirectional=False`) and raise otherwise.
        `num_layers` keeps only the first N decoder layers (layer pruning, see `llm2vec_plugins.pruning`);
        `save()` then writes a plain model folder of that depth.

        Example:
            >>> LLM2Vec.from_pretrained("McGill-NLP/LLM2Vec-Meta-Llama-3-8B-Instruct-mntp",
            ...     "McGill-NLP/LLM2Vec-Meta-Llama-3-8B-Instruct-mntp-supervised", torch_dtype=torch.bfloat16)
        """
        model, tokenizer, resolved = load_base_model(
            base_model_name_or_path, dtype=dtype, device=device, trust_remote_code=trust_remote_code,
            num_layers=num_layers, **hf_kwargs
        )
        # The asked revision belongs to the base repo; a token or cache folder serves the adapter too.
        adapter_hub = without_revision({k: v for k, v in hf_kwargs.items() if k in HUB_KWARGS})
        sources = resolved.sources
        if peft_model_name_or_path is not None:
            sources.append(os.fspath(peft_model_name_or_path))
        for adapter in sources[1 + len(resolved.merged_adapters):]:
            model = attach_adapter(model, adapter, merge=merge_peft, **adapter_hub)
        settings = LLM2VecConfig()
        for source in sources:  # the last one with a config wins, as in the reference
            settings = LLM2VecConfig.load(source, **adapter_hub) or settings
        overrides = dict(pooling_mode=pooling_mode, max_length=max_length,
                         doc_max_length=doc_max_length, skip_instruction=skip_instruction)
        settings = LLM2VecConfig(**(vars(settings) | {k: v for k, v in overrides.items() if v is not None}))
        set_bidirectional(model, enable_bidirectional)
        model.eval()
        if verify_bidirectional:
            verify_attention(model, bidirectional=enable_bidirectional)
        encoder = cls(model, tokenizer, **vars(settings), template=template_for(sources, **adapter_hub))
        encoder.source = (_source_name(base_model_name_or_path), _source_name(peft_model_name_or_path))
        # Which loaded weights the unmerged adapter sits on: save() must not write it over the raw base.
        # A pruned model is such weights too: no base repo holds a model of that depth.
        encoder._adapter_on_merged_weights = (bool(resolved.merged_adapters) or len(sources) > 2
                                              or num_layers is not None or resolved.num_layers is not None)
        return encoder

    @property
    def identity(self) -> dict:
        """What decides this encoder's vectors, as plain JSON: model and adapter as loaded, the encoder
        settings, chat template, attention and dtype. Stores that hold its vectors (a Qdrant collection)
        record it, so that vectors of two encoders never mix.

        Example:
            >>> LLM2Vec.from_pretrained("smollm2-135m-llm2vec").identity["model"]
            'smollm2-135m-llm2vec'
        """
        return {"model": self.source[0], "peft_model": self.source[1], **vars(self.settings),
                "template": list(self.template) if self.template else None,
                "bidirectional": not getattr(self.model.config, "is_causal", True),
                "num_layers": depth_of(self.model.config),
                "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch.")}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def embedding_dim(self) -> int:
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        return int(config.hidden_size)

    def tokenize(self, sentences: Sequence[Sentence]) -> dict[str, torch.Tensor]:
        """Tokenize and pad sentences into model inputs plus `embed_mask` (the pooled tokens)."""
        items = self._tokenize(sentences)
        if not items:
            raise ValueError("tokenize() needs at least one sentence")
        return pad_batch([t.input_ids for t in items], [t.embed_mask for t in items], self.tokenizer.pad_token_id)

    @property
    def input_tokenizer(self) -> InputTokenizer:
        """This encoder's tokenizer with its input settings: sentences -> `TokenizedText`, as `encode` does.

        Example:
            >>> items = model.input_tokenizer(["a cat"])
            >>> len(items[0]), model.encode(items).shape
        """
        return InputTokenizer(self.tokenizer, **vars(self.settings), template=self.template)

    def _tokenize(self, sentences: Sequence[Sentence | TokenizedText]) -> list[TokenizedText]:
        if len(sentences) and all(isinstance(s, TokenizedText) for s in sentences):
            for i, item in enumerate(sentences):
                if len(item) == 0 or len(item.embed_mask) != len(item):
                    raise ValueError(f"tokenized input {i} has {len(item)} token ids and {len(item.embed_mask)} "
                                     "mask entries; it needs at least one token and one mask entry per token")
            return list(sentences)
        return self.input_tokenizer(sentences)

    def forward(self, features: dict[str, torch.Tensor], pack: bool = False) -> torch.Tensor:
        """Pooled embeddings (batch, dim) for tokenized features, with autograd (used by the trainers).

        `pack` lays the batch's texts side by side in rows as wide as its longest text, each attending
        only to itself (as `encode` does; needs `can_pack`): the same vectors up to float rounding, and
        the compute of the real tokens instead of the padded batch's.

        Example:
            >>> embeddings = model(model.tokenize(["a cat", "a much longer sentence about a dog"]), pack=True)
        """
        if not pack:
            return self._embed(self.model, features)
        lengths = features["attention_mask"].sum(1).tolist()
        rows = next(TokenBudgetBatcher(batch_size=len(lengths), max_batch_tokens=None).packed_batches(lengths))
        order = torch.tensor([i for row in rows for i in row], device=features["input_ids"].device)
        vectors = self._embed_packed(self.model, {k: v[order] for k, v in features.items()}, [len(r) for r in rows],
                                     features["input_ids"].device)
        return vectors[torch.argsort(order)]

    def _embed(self, model: nn.Module, features: dict[str, torch.Tensor]) -> torch.Tensor:
        out = model(input_ids=features["input_ids"], attention_mask=features["attention_mask"], use_cache=False)
        return pool(out.last_hidden_state, features["embed_mask"], features["attention_mask"], self.pooling_mode)

    def _embed_packed(self, model: nn.Module, features: dict[str, torch.Tensor], row_sizes: list[int],
                      device: torch.device) -> torch.Tensor:
        """Pooled embeddings of a padded batch's texts, laid out in order `row_sizes[r]` texts to row r
        (see `pack_batch`)."""
        # The padded layout's weights, moved by token: one pooling rule for both layouts. Positions come
        # from the attention mask (pad may equal EOS), so either padding side works.
        mask = features["attention_mask"].bool().cpu()
        weights = pooling_weights(features["embed_mask"], features["attention_mask"], self.pooling_mode).detach().cpu()
        ids = features["input_ids"].cpu()
        batch = pack_batch([ids[i][mask[i]].numpy() for i in range(len(ids))],
                           [weights[i][mask[i]].numpy() for i in range(len(ids))], row_sizes,
                           self.tokenizer.pad_token_id)
        segments = batch["segments"].to(device)
        # Block-diagonal: each text attends to itself and nothing else (padding only to padding, so no
        # row of the mask is empty). A 4D mask reaches the kernels as given, bypassing is_causal.
        mask = segments[:, None, :, None] == segments[:, None, None, :]
        if getattr(model.config, "is_causal", True):  # a causal encoder (enable_bidirectional=False) stays causal
            mask &= torch.ones(mask.shape[-2:], dtype=torch.bool, device=device).tril()
        if model.config._attn_implementation == "eager":  # eager adds the mask to the scores
            dtype = next(model.parameters()).dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(~mask, torch.finfo(dtype).min)
        out = model(input_ids=batch["input_ids"].to(device), position_ids=batch["position_ids"].to(device),
                    attention_mask=mask, use_cache=False)
        hidden = out.last_hidden_state.float().flatten(0, 1)
        segments, token_weights = segments.flatten(), batch["weights"].to(device).flatten()
        real = segments >= 0
        pooled = torch.zeros(len(ids), hidden.shape[-1], device=device)
        return pooled.index_add(0, segments[real], hidden[real] * token_weights[real, None])

    def can_pack(self, width: int | None = None) -> bool:
        """Whether `encode` can pack several texts into one row here with the same vectors as padded
        batches: rotary positions (restarted per text), an sdpa or eager kernel (those take a
        block-diagonal mask), and no sliding window shorter than `width` (the longest text)."""
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        window = getattr(config, "sliding_window", None)
        return (getattr(config, "rope_parameters", None) is not None
                and self.model.config._attn_implementation in ("sdpa", "eager")
                and not (window and width is not None and width > window))

    def _encode_devices(self) -> list[torch.device]:
        if self.data_parallel_devices is not None:
            return [torch.device(d) for d in self.data_parallel_devices]
        device = self.device
        # Like the reference: every visible GPU takes a share. A model spread over GPUs by a device_map
        # already uses them all, so it runs as one.
        if device.type == "cuda" and not getattr(self.model, "hf_device_map", None) and torch.cuda.device_count() > 1:
            return [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
        return [device]

    def _replicas_for(self, devices: list[torch.device]) -> list[nn.Module]:
        """One model per device: the model itself first, then copies made once and refreshed when the
        weights changed in place (training steps bump every parameter's version counter)."""
        version = sum(p._version for p in self.model.parameters())
        models = [self.model]
        for slot, device in enumerate(devices[1:], start=1):
            cached = self._replicas.get((slot, device))
            if cached is None or cached[0] != version:
                self._replicas.pop((slot, device), None)
                cached = (version, copy.deepcopy(self.model).to(device).eval())
                self._replicas[(slot, device)] = cached
            models.append(cached[1])
        return models

    def encode(
        self,
        sentences: Sequence[Sentence] | Sequence[TokenizedText],
        batch_size: int = 32,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
        normalize_embeddings: bool = False,
        max_batch_tokens: int | None = 16384,
        pack: bool | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed sentences; returns float32 numpy (n, dim), or a CPU tensor with `convert_to_tensor=True`.

        All texts are tokenized in one call, sorted by length and batched under `batch_size` items and
        `max_batch_tokens` padded tokens, so padding is small; output keeps the input order. With
        several GPUs visible (and the model on one of them), batches are spread over all of them, one
        model copy each, as the reference does; `data_parallel_devices` picks the devices.
        An empty list gives a (0, dim) array. `sentences` may also be the `TokenizedText` items of
        `input_tokenizer` (tokenized once elsewhere: a chunker, a server counting tokens).
        `pack` lays short texts side by side in one row, each attending only to itself with its own
        positions, instead of padding them (`TokenBudgetBatcher.packed_batches`): the same vectors up to
        float rounding, with less compute where lengths vary. None packs where `can_pack` says the
        model allows it; False pads every text to its batch's longest, as the reference does.

        Example:
            >>> model.encode(["a cat", ["Retrieve similar text:", "a dog"]], normalize_embeddings=True)
        """
        if device is not None and torch.device(device) != self.device:
            self.model.to(device)
        items = self._tokenize(sentences)
        out = torch.empty(len(items), self.embedding_dim, dtype=torch.float32)
        batcher = TokenBudgetBatcher(batch_size, max_batch_tokens)
        lengths = [len(t) for t in items]
        packable = self.can_pack(max(lengths, default=0))
        if pack and not packable:
            raise ValueError(f"pack=True, but {self.model.config.model_type!r} with attention "
                             f"{self.model.config._attn_implementation!r} cannot pack texts here (see can_pack); "
                             "pass pack=None or False")
        pack = packable if pack is None else pack
        # Each forward pass: rows of item indices (one item per row when padding).
        if pack:
            batches = list(batcher.packed_batches(lengths))
        else:
            batches = [[[i] for i in index.tolist()] for index in batcher.batches(lengths)]
        progress = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            progress = tqdm(total=len(items), desc="Encoding", unit="text")
        was_training = self.model.training
        self.model.eval()

        def run(model: nn.Module, device: torch.device, share: list) -> None:
            with torch.inference_mode():
                for rows in share:
                    index = [i for row in rows for i in row]
                    batch = pad_batch([items[i].input_ids for i in index], [items[i].embed_mask for i in index],
                                      self.tokenizer.pad_token_id)
                    if pack:
                        vectors = self._embed_packed(model, batch, [len(r) for r in rows], device)
                    else:
                        vectors = self._embed(model, {k: v.to(device) for k, v in batch.items()})
                    out[torch.tensor(index)] = vectors.float().cpu()
                    if progress is not None:
                        progress.update(len(index))

        try:
            devices = self._encode_devices() if len(batches) > 1 else [self.device]
            if devices[0] != self.device:  # the model itself serves the first share
                self.model.to(devices[0])
            if len(devices) == 1:
                run(self.model, self.device, batches)
            else:
                from concurrent.futures import ThreadPoolExecutor

                # Batches are sorted by length, so dealing them round-robin gives each device equal work.
                # Threads suffice: the GIL is released while each GPU computes; each writes its own rows.
                replicas = self._replicas_for(devices)
                with ThreadPoolExecutor(len(devices), thread_name_prefix="llm2vec-encode") as pool_:
                    jobs = [pool_.submit(run, replicas[i], d, batches[i::len(devices)]) for i, d in enumerate(devices)]
                    for job in jobs:
                        job.result()
        finally:
            self.model.train(was_training)
            if progress is not None:
                progress.close()
        if normalize_embeddings:
            out = torch.nn.functional.normalize(out, dim=-1)
        if convert_to_tensor or not convert_to_numpy:
            return out
        return out.numpy()

    def save(self, output_path: str | os.PathLike, merge_before_save: bool = False, save_config: bool = True) -> Path:
        """Write the model, tokenizer and llm2vec_config.json to a folder that both
        `LLM2Vec.from_pretrained(output_path)` and the reference implementation load back.

        An unmerged adapter on the plain base is written alone (its config names the base); an
        adapter on weights that already hold merged adapters (a `-mntp` base, a stacked adapter) is
        merged first, since no base repo holds those weights. The chat template's model id goes into
        config.json as `_name_or_path`, where the reference looks for it.

        Example:
            >>> LLM2Vec.from_pretrained("smollm2-135m-llm2vec").save("my-encoder")
            >>> LLM2Vec.from_pretrained("my-encoder")
        """
        from peft import PeftModel

        output_path = Path(output_path)
        if isinstance(self.model, PeftModel) and (merge_before_save or self._adapter_on_merged_weights):
            self.model = self.model.merge_and_unload()
            self._adapter_on_merged_weights = False
            self._replicas.clear()
        config = self.model.config
        # `is_causal` is our runtime switch, not a property of the checkpoint.
        had_flag, flag = hasattr(config, "is_causal"), getattr(config, "is_causal", None)
        if had_flag:
            del config.is_causal
        try:
            self.model.save_pretrained(output_path)
        finally:
            if had_flag:
                config.is_causal = flag
        template_model = name_for_template(self.template)
        config_file = output_path / "config.json"
        if template_model is not None and config_file.is_file():
            saved = json.loads(config_file.read_text())
            saved["_name_or_path"] = template_model
            config_file.write_text(json.dumps(saved, indent=2) + "\n")
        self.tokenizer.save_pretrained(output_path)
        if save_config:
            self.settings.save(output_path)
        return output_path


def _source_name(name: str | os.PathLike | None) -> str | None:
    """A model argument as recorded in `identity`: local paths absolute (two spellings, one model)."""
    if name is None:
        return None
    name = os.fspath(name)
    return os.path.realpath(name) if os.path.exists(name) else name
