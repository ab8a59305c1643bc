"""MNTP (masked next-token prediction): mask tokens, predict each masked token i from the hidden state at i-1.

Logits are computed only at the masked positions, so a 262k-vocabulary model never builds a
(batch, length, vocab) tensor.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llm2vec_plugins.training.config import MNTPConfig, build_config
from llm2vec_plugins.training.data import print_report, read_texts
from llm2vec_plugins.training.trainer import EncoderTrainer, TrainResult, fit, load_for_training


def resolve_mask_token(tokenizer, choice: str = "auto") -> int:
    """Token id used to mask: the tokenizer's own mask token, else '_' (the paper's choice for Llama and
    Mistral, which have none); 'eos' for EOS; or any token given literally.

    Example:
        >>> resolve_mask_token(AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct"))
        62
    """
    if choice == "auto":
        if tokenizer.mask_token_id is not None:
            return tokenizer.mask_token_id
        choice = "_"
    if choice == "eos":
        if tokenizer.eos_token_id is None:
            raise ValueError("mask_token='eos' but the tokenizer has no EOS token")
        return tokenizer.eos_token_id
    token_id = tokenizer.convert_tokens_to_ids(choice)
    if token_id is None or token_id == tokenizer.unk_token_id:
        ids = tokenizer(choice, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"mask token {choice!r} is not a single token of this tokenizer; use '_' or 'eos'")
        token_id = ids[0]
    return int(token_id)


@dataclass
class MNTPCollator:
    """Tokenize texts and mask a fraction of tokens; labels are -100 except at masked positions.

    The first token is never masked: nothing precedes it to predict it from.
    """

    tokenizer: object
    max_length: int
    mask_token_id: int
    mask_probability: float = 0.2
    strategy: str = "bert"  # "bert": 80% mask / 10% random / 10% kept; "all_mask": always the mask token
    seed: int = 0

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=True,
                               return_tensors="pt", return_special_tokens_mask=True)
        # The masks follow from the batch's texts, not from the global RNG: the dataloader collates ahead
        # of the step, so on resume the RNG would not be where the unbroken run had it.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32("\x1f".join(texts).encode()))
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        candidates = attention_mask.bool() & ~batch["special_tokens_mask"].bool()
        candidates[:, 0] = False
        masked = (torch.rand(input_ids.shape, generator=generator) < self.mask_probability) & candidates
        if not masked.any() and candidates.any():  # a batch with no target has no loss to learn from
            pick = torch.randint(int(candidates.sum()), (1,), generator=generator)
            masked.view(-1)[candidates.view(-1).nonzero()[pick]] = True
        labels = torch.where(masked, input_ids, torch.full_like(input_ids, -100))
        input_ids = input_ids.clone()
        if self.strategy == "all_mask":
            input_ids[masked] = self.mask_token_id
        else:
            draw = torch.rand(input_ids.shape, generator=generator)
            input_ids[masked & (draw < 0.8)] = self.mask_token_id
            random = masked & (draw >= 0.8) & (draw < 0.9)
            input_ids[random] = torch.randint(len(self.tokenizer), (int(random.sum()),), generator=generator)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class MNTPModel(nn.Module):
    """Bidirectional decoder (with LoRA) + frozen LM head; loss = cross-entropy at masked positions only."""

    def __init__(self, decoder: nn.Module, lm_head: nn.Module) -> None:
        super().__init__()
        self.decoder, self.lm_head = decoder, lm_head
        self.config = decoder.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> dict:
        hidden = self.decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        # The "next-token" shift: the hidden state at i-1 predicts the (masked) token at i.
        targets = labels[:, 1:]
        selected = targets != -100
        logits = self.lm_head(hidden[:, :-1][selected])
        if logits.shape[0] == 0:
            return {"loss": hidden.sum() * 0.0}
        return {"loss": F.cross_entropy(logits.float(), targets[selected])}


def train_mntp(config: MNTPConfig | None = None, **options) -> TrainResult:
    """Train an MNTP LoRA adapter; returns where it was saved and what the run measured.

    Example:
        >>> train_mntp(model="smollm2-135m-instruct", data="corpus.txt", output_dir="out/mntp",
        ...            max_steps=300, batch_size=16, max_length=128, mask_probability=0.2)
    """
    config = config or build_config("mntp", **options)
    texts, report = read_texts(config.data, config.text_column, config.max_examples)
    print_report(report)
    parts = load_for_training(config, with_lm_head=True)
    model = MNTPModel(parts.peft_model, parts.causal_lm.get_output_embeddings())
    collator = MNTPCollator(parts.tokenizer, config.max_length, resolve_mask_token(parts.tokenizer, config.mask_token),
                            config.mask_probability, config.mask_strategy, config.seed)
    return fit(EncoderTrainer, config, model, parts, texts, collator)
