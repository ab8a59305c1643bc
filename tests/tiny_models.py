"""Tiny random decoder models and a BPE tokenizer trained on the fly: offline, seconds to build."""
from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "A man is playing a guitar on the street.",
    "The quick brown fox jumps over the lazy dog.",
    "Retrieve semantically similar text: two dogs run in a field.",
    "Given a question, retrieve passages that answer the question.",
    "Emoji 😀 and CJK 中文字符 and symbols !@#$%^&*() [brackets] {braces}.",
    "Language models can be turned into text encoders with bidirectional attention.",
] * 20

# transformers config class, kwargs that keep it tiny
ARCHITECTURES = {
    "llama": ("LlamaConfig", {}),
    "llama3_rope": ("LlamaConfig", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                         "original_max_position_embeddings": 64}}),
    "mistral": ("MistralConfig", {"sliding_window": 64}),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 8}),
    "gemma": ("GemmaConfig", {"head_dim": 8}),
    "gemma2": ("Gemma2Config", {"head_dim": 8, "sliding_window": 64}),
    "gemma3": ("Gemma3TextConfig", {"head_dim": 8, "sliding_window": 64}),
    "phi3": ("Phi3Config", {}),
}


def build_tokenizer(path: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="</s>")
    fast.save_pretrained(path)
    return fast


def build_tiny_model(arch: str, path: Path, tokenizer_dir: Path, layers: int = 2) -> Path:
    """Save a random model of `arch` (`layers` deep) with the tiny tokenizer into `path`."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config_name, extra = ARCHITECTURES[arch]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = getattr(transformers, config_name)(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **extra,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_sentence_transformer(path: Path, tokenizer_dir: Path, hidden: int = 24) -> Path:
    """Save a tiny random BERT (`hidden` wide) + mean pooling + normalisation as a sentence-transformers folder
    (a teacher)."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(1)
    bert_dir = path.parent / f"{path.name}-bert"
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=256)).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    transformer = models.Transformer(str(bert_dir), max_seq_length=64)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu").save(str(path))
    return path
