"""`LLM2Vec`: a decoder-only LLM used as a bidirectional text encoder (drop-in for the reference API)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from llm2vec_plugins.attention import check_bidirectional, set_bidirectional
from llm2vec_plugins.batching import TokenBudgetBatcher, pad_batch
from llm2vec_plugins.config import LLM2VecConfig, PoolingMode
from llm2vec_plugins.loading import attach_adapter, load_base_model
from llm2vec_plugins.pooling import pool
from llm2vec_plugins.templates import template_for
from llm2vec_plugins.tokenization import Sentence, split_sentences, tokenize_texts


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

    # The reference exposes these as attributes; keep them readable and writable.
    pooling_mode = property(lambda self: self.settings.pooling_mode, lambda self, v: self._set("pooling_mode", v))
    max_length = property(lambda self: self.settings.max_length, lambda self, v: self._set("max_length", v))
    doc_max_length = property(lambda self: self.settings.doc_max_length, lambda self, v: self._set("doc_max_length", v))
    skip_instruction = property(lambda self: self.settings.skip_instruction, lambda self, v: self._set("skip_instruction", v))

    def _set(self, name: str, value) -> None:
        values = vars(self.settings) | {name: value}
        self.settings = LLM2VecConfig(**values)  # re-validates

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
        **hf_kwargs,
    ) -> LLM2Vec:
        """Load an encoder from a hub id, a local folder, a .gguf file or an alias, plus optional LoRA.

        Encoder settings left as None come from `llm2vec_config.json` (in the peft folder if given,
        else in the base folder), else the reference defaults (mean, 512, 400, True). When
        `verify_bidirectional` is on, a tiny forward pass proves that attention is really
        bidirectional (or really causal when `enable_bidirectional=False`) and raises otherwise.

        Example:
            >>> LLM2Vec.from_pretrained("McGill-NLP/LLM2Vec-Sheared-LLaMA-mntp",
            ...     "McGill-NLP/LLM2Vec-Sheared-LLaMA-mntp-unsup-simcse", dtype="bfloat16")
        """
        model, tokenizer, resolved = load_base_model(
            base_model_name_or_path, dtype=dtype, trust_remote_code=trust_remote_code, **hf_kwargs
        )
        config_sources = [resolved.base, *resolved.merged_adapters]
        adapters = [a for a in (resolved.top_adapter, peft_model_name_or_path) if a is not None]
        for adapter in adapters:
            model = attach_adapter(model, os.fspath(adapter), merge=merge_peft)
            config_sources.append(os.fspath(adapter))
        settings = LLM2VecConfig()
        for source in config_sources:  # the last folder with a config wins, as in the reference
            if os.path.isdir(source):
                settings = LLM2VecConfig.load(source) or settings
        overrides = dict(pooling_mode=pooling_mode, max_length=max_length,
                         doc_max_length=doc_max_length, skip_instruction=skip_instruction)
        settings = LLM2VecConfig(**(vars(settings) | {k: v for k, v in overrides.items() if v is not None}))
        set_bidirectional(model, enable_bidirectional)
        model.eval()
        if device is not None:
            model.to(device)
        if verify_bidirectional:
            report = check_bidirectional(model, batch_sizes=(1, 2), padded=(True,))
            if enable_bidirectional and not report.is_bidirectional:
                raise RuntimeError(
                    f"attention of {model.config.model_type!r} stayed causal after enabling bidirectional "
                    f"attention ({report}); this architecture does not use transformers' shared masking code"
                )
            if not enable_bidirectional and not report.is_causal:
                raise RuntimeError(f"attention is not causal although enable_bidirectional=False ({report})")
        return cls(model, tokenizer, **vars(settings), template=template_for(config_sources))

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

    def _tokenize(self, sentences: Sequence[Sentence]):
        instructions, texts = split_sentences(sentences)
        return tokenize_texts(
            self.tokenizer, instructions, texts,
            max_length=self.max_length, doc_max_length=self.doc_max_length,
            skip_instruction=self.skip_instruction, pooling_mode=self.pooling_mode, template=self.template,
        )

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled embeddings (batch, dim) for tokenized features, with autograd (used by the trainers)."""
        out = self.model(
            input_ids=features["input_ids"], attention_mask=features["attention_mask"], use_cache=False
        )
        return pool(out.last_hidden_state, features["embed_mask"], features["attention_mask"], self.pooling_mode)

    def encode(
        self,
        sentences: Sequence[Sentence],
        batch_size: int = 32,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
        normalize_embeddings: bool = False,
        max_batch_tokens: int | None = 16384,
    ) -> np.ndarray | torch.Tensor:
        """Embed sentences; returns float32 numpy (n, dim), or a CPU tensor with `convert_to_tensor=True`.

        All texts are tokenized in one call, sorted by length and batched under `batch_size` items and
        `max_batch_tokens` padded tokens, so padding is small; output keeps the input order.
        An empty list gives a (0, dim) array.

        Example:
            >>> model.encode(["a cat", ["Retrieve similar text:", "a dog"]], normalize_embeddings=True)
        """
        if device is not None and torch.device(device) != self.device:
            self.model.to(device)
        items = self._tokenize(sentences)
        out = torch.empty(len(items), self.embedding_dim, dtype=torch.float32)
        batcher = TokenBudgetBatcher(batch_size, max_batch_tokens)
        batches = list(batcher.batches([len(t) for t in items]))
        progress = None
        if show_progress_bar:
            from tqdm.auto import tqdm

            progress = tqdm(total=len(items), desc="Encoding", unit="text")
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for index in batches:
                    batch = pad_batch([items[i].input_ids for i in index], [items[i].embed_mask for i in index],
                                      self.tokenizer.pad_token_id)
                    batch = {k: v.to(self.device) for k, v in batch.items()}
                    out[torch.from_numpy(index)] = self.forward(batch).cpu()
                    if progress is not None:
                        progress.update(len(index))
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
        """Write the model (or its peft adapter), tokenizer and llm2vec_config.json to a folder.

        `LLM2Vec.from_pretrained(output_path)` loads it back; the reference implementation does too.
        """
        from peft import PeftModel

        output_path = Path(output_path)
        if merge_before_save and isinstance(self.model, PeftModel):
            self.model = self.model.merge_and_unload()
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
        self.tokenizer.save_pretrained(output_path)
        if save_config:
            self.settings.save(output_path)
        return output_path
