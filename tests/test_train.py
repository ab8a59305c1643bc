"""The trainers, end to end on a tiny random Llama: MNTP, SimCSE, supervised, resume, CLI, merge."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from llm2vec_plugins import LLM2Vec
from llm2vec_plugins.training import build_config, train
from llm2vec_plugins.training.data import E5_EMBEDDING_PROMPTS, DataError, read_pairs, read_texts
from llm2vec_plugins.training.mntp import MNTPCollator, MNTPModel, resolve_mask_token
from llm2vec_plugins.training.supervised import SourceBatchSampler, SupervisedCollator
from llm2vec_plugins.training.trainer import EncoderTrainer
from tests.tiny_models import CORPUS, build_tiny_sentence_transformer

FAST = dict(max_steps=3, batch_size=4, max_length=32, logging_steps=1, save_steps=100, progress=False)
# The reference's E5Data marks where the pooled text starts with this string (E5Data.separator).
REFERENCE_SEPARATOR = "!@#$%^&*()"


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4, msg: str = "") -> None:
    """Equal up to float32 rounding: relative to each element and to the tensor's magnitude, because
    summation order (and so the last bits) differs between CPUs and between batchings."""
    atol = rtol * 0.1 * float(expected.detach().abs().max()) + 1e-12
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{msg}: {m}")


def assert_gradients_close(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys() and expected
    for name in expected:
        assert_close_to_scale(actual[name], expected[name], msg=name)


def trainer_gradients(model_dir, pairs, output_dir, rows: slice, chunk: int | None,
                      pack: bool = False) -> dict[str, torch.Tensor]:
    """LoRA gradients after one ContrastiveTrainer step on `rows` of `pairs` (DDP-wrapped when distributed)."""
    import torch.distributed as dist

    from llm2vec_plugins.training.contrastive import ContrastiveTrainer
    from llm2vec_plugins.training.trainer import load_for_training, training_arguments

    config = build_config("supervised", model=str(model_dir), data=str(pairs), output_dir=str(output_dir),
                          lora_dropout=0.0, **FAST)
    examples, _ = read_pairs(pairs)
    torch.manual_seed(0)
    parts = load_for_training(config)
    encoder = parts.encoder(config)
    for name, p in encoder.named_parameters():  # LoRA B starts at zero: give it a value so A gets gradient
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    trainer = ContrastiveTrainer(model=encoder, args=training_arguments(config), train_dataset=examples,
                                 parts=parts, settings=None, scale=50.0, grad_cache_chunk_size=chunk, pack=pack)
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which is bypassed here
    model = trainer.accelerator.prepare_model(encoder) if dist.is_initialized() else encoder
    trainer.training_step(model, SupervisedCollator(encoder)(examples[rows]))
    return {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    lines = [f"{s} Number {i}." for i, s in enumerate(CORPUS[:40])]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    rows = [{"query": f"which animal number {i}?", "positive": f"animal {i} is a fox", "negative": f"plant {i} is a tree",
             "instruction": "Retrieve the answer:", "dataset": "ab"[i % 2]} for i in range(16)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def embeddings(model_dir, adapter=None, texts=("a fox jumps", "a man plays guitar")) -> np.ndarray:
    return LLM2Vec.from_pretrained(model_dir, adapter).encode(list(texts))


def test_mntp_trains_saves_and_reloads_an_adapter(tiny_llama_dir, corpus, tmp_path):
    result = train("mntp", model=str(tiny_llama_dir), data=str(corpus), output_dir=str(tmp_path / "mntp"), **FAST)
    assert result.global_step == 3 and math.isfinite(result.final_loss)
    for name in ("adapter_config.json", "adapter_model.safetensors", "llm2vec_config.json"):
        assert (tmp_path / "mntp" / name).is_file()
    assert not np.allclose(embeddings(tiny_llama_dir), embeddings(tiny_llama_dir, tmp_path / "mntp"))
    # A stage's output folder is a model argument for the next stage (its base is found and merged).
    assert embeddings(tmp_path / "mntp").shape == (2, 32)


def test_mntp_masks_a_fraction_of_tokens_but_never_the_first(tiny_llama_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    mask_id = resolve_mask_token(tokenizer, "_")
    torch.manual_seed(0)
    batch = MNTPCollator(tokenizer, 64, mask_id, 0.5, "all_mask")(CORPUS[:8])
    masked = batch["labels"] != -100
    assert not masked[:, 0].any()
    assert (batch["input_ids"][masked] == mask_id).all()
    fraction = masked.sum() / batch["attention_mask"][:, 1:].sum()
    assert 0.35 < fraction < 0.65


def test_mask_token_choice_follows_the_tokenizer(tiny_llama_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    assert resolve_mask_token(tokenizer, "eos") == tokenizer.eos_token_id
    assert resolve_mask_token(tokenizer, "auto") == resolve_mask_token(tokenizer, "_")  # no mask token: '_'
    with pytest.raises(ValueError, match="not a single token"):
        resolve_mask_token(tokenizer, "<definitely not one token>")


def test_mntp_computes_logits_only_at_masked_positions(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    causal = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    rows = []
    causal.lm_head.register_forward_hook(lambda module, inputs, output: rows.append(inputs[0].shape))
    model = MNTPModel(causal.get_decoder(), causal.lm_head)
    ids = torch.randint(10, 300, (2, 12))
    labels = torch.full_like(ids, -100)
    labels[0, 3], labels[1, 7], labels[1, 8] = ids[0, 3], ids[1, 7], ids[1, 8]
    loss = model(ids, torch.ones_like(ids), labels)["loss"]
    assert rows == [torch.Size([3, 32])]  # 3 masked tokens -> 3 rows of logits, never (2, 12, vocab)
    # The next-token shift: the token at i is predicted from the hidden state at i-1.
    hidden = causal.get_decoder()(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    logits = causal.lm_head(torch.stack([hidden[0, 2], hidden[1, 6], hidden[1, 7]]))
    expected = torch.nn.functional.cross_entropy(logits, torch.stack([ids[0, 3], ids[1, 7], ids[1, 8]]))
    assert_close_to_scale(loss, expected)


def test_simcse_trains_a_bf16_adapter_with_its_encoder_config(tiny_llama_dir, corpus, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "simcse"
    result = train("simcse", model=str(tiny_llama_dir), data=str(corpus), output_dir=str(out), save_dtype="bfloat16",
                   pooling_mode="weighted_mean", **FAST)
    assert math.isfinite(result.final_loss)
    assert {t.dtype for t in load_file(out / "adapter_model.safetensors").values()} == {torch.bfloat16}
    assert json.loads((out / "llm2vec_config.json").read_text())["pooling_mode"] == "weighted_mean"
    assert LLM2Vec.from_pretrained(tiny_llama_dir, out).pooling_mode == "weighted_mean"
    assert not np.allclose(embeddings(tiny_llama_dir), embeddings(tiny_llama_dir, out))


def test_supervised_with_gradient_cache_trains(tiny_llama_dir, pairs, tmp_path):
    result = train("supervised", model=str(tiny_llama_dir), data=str(pairs), output_dir=str(tmp_path / "sup"),
                   grad_cache_chunk_size=3, **FAST)
    assert result.global_step == 3 and math.isfinite(result.final_loss)
    assert embeddings(tiny_llama_dir, tmp_path / "sup").shape == (2, 32)


def test_gradient_cache_gives_the_same_gradients_as_one_big_batch(tiny_llama_dir, pairs, tmp_path):
    whole = trainer_gradients(tiny_llama_dir, pairs, tmp_path, slice(0, 6), chunk=None)
    assert_gradients_close(trainer_gradients(tiny_llama_dir, pairs, tmp_path, slice(0, 6), chunk=2), whole)


@pytest.mark.parametrize("chunk", [None, 4])
def test_packed_batches_give_the_padded_batches_gradients(tiny_llama_dir, tmp_path, chunk):
    from llm2vec_plugins.batching import TokenBudgetBatcher

    # Lengths that vary (as real text does), so that several texts really share a row.
    rows = [{"query": f"which animal number {i}?", "positive": "a fox " * (1 + 3 * i),
             "negative": f"plant {i} is a tree", "instruction": "Retrieve the answer:"} for i in range(6)]
    path = tmp_path / "varied.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    encoder = LLM2Vec.from_pretrained(tiny_llama_dir)
    texts = [r[k] for k in ("query", "positive", "negative") for r in rows]
    lengths = [len(t) for t in encoder.input_tokenizer(texts)]
    assert len(next(TokenBudgetBatcher(len(texts), None).packed_batches(lengths))) < len(texts) / 2
    padded = trainer_gradients(tiny_llama_dir, path, tmp_path, slice(0, 6), chunk=chunk)
    assert_gradients_close(trainer_gradients(tiny_llama_dir, path, tmp_path, slice(0, 6), chunk=chunk, pack=True),
                           padded)


def test_packing_a_stage_that_cannot_pack_is_a_clear_error(tiny_llama_dir, tiny_model_dirs, corpus, tmp_path):
    with pytest.raises(ValueError, match="pack=True, but MNTP"):
        train("mntp", model=str(tiny_llama_dir), data=str(corpus), output_dir=str(tmp_path / "m"), pack=True, **FAST)
    # The tiny Mistral's sliding window (64) is narrower than texts of up to 200 tokens.
    with pytest.raises(ValueError, match="pack=True, but 'mistral' .* cannot pack"):
        train("simcse", model=str(tiny_model_dirs("mistral")), data=str(corpus), output_dir=str(tmp_path / "s"),
              pack=True, **{**FAST, "max_length": 200})


def test_gradient_tolerance_is_relative_to_the_gradient_scale():
    # Gradients of magnitude ~90 differ in their last bits between CPUs (AMD EPYC vs Intel): a fixed
    # atol=1e-5 failed there, a tolerance relative to the magnitude does not, and still catches real errors.
    big = torch.tensor([91.82, 0.012001, -23.25])
    assert_close_to_scale(torch.tensor([91.82, 0.012013, -23.25]), big)
    with pytest.raises(AssertionError):
        assert_close_to_scale(torch.tensor([91.82, 0.05, -23.25]), big)


def test_supervised_batches_come_from_one_source():
    sources = ["a"] * 7 + ["b"] * 5 + ["c"] * 2
    batches = list(SourceBatchSampler(sources, batch_size=2, seed=1))
    assert len(batches) == 3 + 2 + 1
    assert all(len({sources[i] for i in batch}) == 1 for batch in batches)


def test_each_global_batch_of_two_processes_comes_from_one_source():
    from accelerate.data_loader import BatchSamplerShard

    sources = ["a"] * 13 + ["b"] * 9 + ["c"] * 3
    # Each process builds its own sampler (same sources and seed) and accelerate shards it, as under torchrun.
    ranks = [list(BatchSamplerShard(SourceBatchSampler(sources, batch_size=2, seed=3, num_processes=2), 2, rank))
             for rank in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 3 + 2  # 4-row global batches: a has 3, b 2, c none
    for step, (first, second) in enumerate(zip(*ranks)):
        assert len(first) == len(second) == 2 and not set(first) & set(second)
        assert len({sources[i] for i in first + second}) == 1, f"step {step} mixes sources"
    assert {sources[i] for batch in ranks[0] for i in batch} == {"a", "b"}


def test_source_batches_are_reshuffled_per_epoch():
    sampler = SourceBatchSampler(["a"] * 8 + ["b"] * 8, batch_size=2, seed=0)
    first = list(sampler)
    assert list(sampler) == first  # the order follows the epoch the Trainer sets, so resume replays it
    sampler.set_epoch(1)
    assert list(sampler) != first


def write_e5_folder(folder: Path, names: dict[str, int]) -> Path:
    """A folder in the public E5 layout: {name}.jsonl with {"query", "positive", "negative"} rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in names.items():
        rows = [{"query": f"{name} query {i}", "positive": f"{name} positive {i}", "negative": f"{name} negative {i}"}
                for i in range(n)]
        (folder / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def test_e5_folder_takes_each_datasets_instruction_from_the_reference_table(tmp_path):
    folder = write_e5_folder(tmp_path / "e5", {"msmarco_passage": 3, "allnli": 4, "quora_duplicates": 2,
                                               "notes": 2})
    examples, report = read_pairs(folder)
    by_source = {}
    for e in examples:
        by_source.setdefault(e.source, []).append(e)
    assert set(by_source) == {"msmarco_passage", "allnli", "quora_duplicates"}
    msmarco = E5_EMBEDDING_PROMPTS["msmarco_passage"]
    assert {e.instruction for e in by_source["msmarco_passage"]} == {f"{msmarco};"}
    # Two instructions alternate by row index, and documents carry none.
    assert [e.instruction for e in by_source["allnli"]] == [f"{E5_EMBEDDING_PROMPTS['allnli'][i % 2]};"
                                                             for i in range(4)]
    assert {e.document_instruction for e in examples} == {""}
    assert by_source["allnli"][1].negatives == ["allnli negative 1"]
    assert "notes.jsonl" in str(report) and "msmarco_passage 3" in str(report)


def test_e5_split_files_merge_into_one_source_with_symmetric_instructions(tmp_path):
    folder = write_e5_folder(tmp_path / "e5", {"allnli_split1": 2, "allnli_split2": 2, "quora_duplicates_split1": 2})
    examples, _ = read_pairs(folder)
    assert {e.source for e in examples} == {"allnli", "quora_duplicates"}
    premise, similar = (f"{x};" for x in E5_EMBEDDING_PROMPTS["allnli"])
    split1 = [e for e in examples if e.query.startswith("allnli_split1")]
    split2 = [e for e in examples if e.query.startswith("allnli_split2")]
    assert {(e.instruction, e.document_instruction) for e in split1} == {(premise, "")}
    assert {(e.instruction, e.document_instruction) for e in split2} == {(similar, similar)}
    quora = E5_EMBEDDING_PROMPTS["quora_duplicates"][0] + ";"
    assert {(e.instruction, e.document_instruction) for e in examples if e.source == "quora_duplicates"} == {(quora, quora)}


def test_one_e5_named_file_is_read_as_the_reference_reads_it(tmp_path):
    folder = write_e5_folder(tmp_path / "e5", {"fever": 2})
    examples, _ = read_pairs(folder / "fever.jsonl")
    assert {(e.source, e.instruction) for e in examples} == {("fever", E5_EMBEDDING_PROMPTS["fever"] + ";")}


def test_a_folder_without_e5_files_is_an_error(tmp_path):
    write_e5_folder(tmp_path / "other", {"mydata": 2})
    with pytest.raises(DataError, match="msmarco_passage.jsonl"):
        read_pairs(tmp_path / "other")


def test_per_row_instructions_and_sources_still_work(pairs):
    examples, _ = read_pairs(pairs)
    assert {e.source for e in examples} == {"a", "b"}
    assert {(e.instruction, e.document_instruction) for e in examples} == {("Retrieve the answer:", "")}


def test_e5_instructions_tokenize_as_the_reference_training_text(tiny_llama_dir, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    encoder = LLM2Vec.from_pretrained(tiny_llama_dir)
    folder = write_e5_folder(tmp_path / "e5", {"allnli_split2": 2, "hotpot_qa": 2})
    examples, _ = read_pairs(folder)
    queries, positives = SupervisedCollator(encoder)(examples)["groups"][:2]
    for group, side in ((queries, [(e.instruction, e.query) for e in examples]),
                        (positives, [(e.document_instruction, e.positive) for e in examples])):
        for row, (instruction, text) in enumerate(side):
            # The reference's E5Data writes f"{instruction}; " + separator + text, and its tokenize() drops
            # the separator: those are the tokens the model must see.
            raw = f"{instruction.removesuffix(';')}; " + REFERENCE_SEPARATOR + text if instruction else text
            expected = tokenizer("".join(raw.split(REFERENCE_SEPARATOR)))["input_ids"]
            attended, pooled = group["attention_mask"][row].bool(), group["embed_mask"][row].bool()
            assert group["input_ids"][row][attended].tolist() == expected
            # ...and, as the reference pools, the last N tokens, N the token count of the text alone: the
            # instruction is attended to.
            count = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            assert group["input_ids"][row][pooled].tolist() == group["input_ids"][row][attended][-count:].tolist()
            assert bool(instruction) == bool((attended & ~pooled).any())


def test_supervised_trains_on_an_e5_folder(tiny_llama_dir, tmp_path):
    folder = write_e5_folder(tmp_path / "e5", {"msmarco_passage": 8, "allnli": 8})
    result = train("supervised", model=str(tiny_llama_dir), data=str(folder), output_dir=str(tmp_path / "sup"),
                   **dict(FAST, max_steps=2))
    assert result.global_step == 2 and math.isfinite(result.final_loss)


def test_contrastive_training_lowers_loss_and_raises_retrieval_accuracy(tiny_llama_dir, tmp_path):
    from llm2vec_plugins.training.losses import retrieval_accuracy

    names = ["fox", "dog", "man", "guitar", "street", "field", "question", "passage"]
    rows = [{"query": f"{a} and {b}", "positive": f"the {b} with a {a}", "negative": f"the {a} with a {b}"}
            for a in names for b in names if a != b][:32]
    data = tmp_path / "toy.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    def accuracy(adapter=None) -> float:
        model = LLM2Vec.from_pretrained(tiny_llama_dir, adapter)
        q = model.encode([r["query"] for r in rows], convert_to_tensor=True)
        d = model.encode([r["positive"] for r in rows], convert_to_tensor=True)
        return retrieval_accuracy(q, d)

    result = train("supervised", model=str(tiny_llama_dir), data=str(data), output_dir=str(tmp_path / "out"),
                   max_steps=40, batch_size=16, learning_rate=5e-3, lora_dropout=0.0, scale=20.0, max_length=32,
                   logging_steps=1, save_steps=1000, progress=False)
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert accuracy(tmp_path / "out") > accuracy() + 0.1


def test_resume_continues_at_the_saved_step(tiny_llama_dir, corpus, tmp_path):
    out = str(tmp_path / "run")
    common = dict(model=str(tiny_llama_dir), data=str(corpus), output_dir=out, batch_size=4, max_length=32,
                  logging_steps=1, save_steps=2, progress=False)
    train("simcse", max_steps=2, **common)
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    result = train("simcse", max_steps=4, resume="latest", **common)
    steps = [h["step"] for h in result.log_history if "loss" in h]
    assert result.global_step == 4 and steps[-2:] == [3, 4]
    assert min(s for s in steps if s > 2) == 3  # nothing before the checkpoint was trained again


@pytest.mark.parametrize("stage", ["mntp", "simcse", "distill"])
def test_a_run_resumed_after_a_crash_trains_as_the_unbroken_one(tiny_llama_dir, tiny_tokenizer_dir, corpus, tmp_path,
                                                                monkeypatch, stage):
    common = dict(model=str(tiny_llama_dir), data=str(corpus), batch_size=4, max_length=32, logging_steps=1,
                  save_steps=2, max_steps=6, progress=False, learning_rate=1e-3, lora_dropout=0.1)
    if stage == "simcse":  # several micro-batches per step: the restored RNG must line up with them too
        common |= dict(batch_size=2, gradient_accumulation_steps=2)
    if stage == "distill":  # the rotated teacher and the drawn instructions must come back the same too
        teacher = build_tiny_sentence_transformer(tmp_path / "teacher", tiny_tokenizer_dir)
        common |= dict(teacher=str(teacher), distill_loss="align", instructions="Retrieve:",
                       instruction_probability=0.5)
    whole = train(stage, output_dir=str(tmp_path / "whole"), **common)
    step = EncoderTrainer.training_step

    def crash_after_the_checkpoint(self, *args, **kwargs):
        if self.state.global_step == 3:  # checkpoint-2 is on disk, step 3 is done and lost
            raise RuntimeError("killed")
        return step(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(EncoderTrainer, "training_step", crash_after_the_checkpoint)
        with pytest.raises(RuntimeError, match="killed"):
            train(stage, output_dir=str(tmp_path / "broken"), **common)
    resumed = train(stage, output_dir=str(tmp_path / "broken"), resume="latest", **common)
    losses = [[h["loss"] for h in r.log_history if "loss" in h and h["step"] > 2] for r in (whole, resumed)]
    assert len(losses[1]) == 4 and np.allclose(losses[0], losses[1], rtol=1e-5), losses
    assert np.allclose(embeddings(tmp_path / "whole"), embeddings(tmp_path / "broken"), rtol=1e-4, atol=1e-6)


def test_bad_rows_are_counted_and_skipped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "good one"}\n{"text": ""}\nnot json\n{"other": 1}\n{"text": 5}\n{"text": "good two"}\n')
    texts, report = read_texts(path)
    assert texts == ["good one", "good two"]
    assert sum(report.skipped.values()) == 4 and "invalid JSON" in str(report)


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_data_is_an_error_before_any_model_is_loaded(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_text(content)
    with pytest.raises(DataError, match="no usable text"):
        train("mntp", model="no/such-model-anywhere", data=str(path), output_dir=str(tmp_path / "o"))
    with pytest.raises(DataError, match="not found"):
        train("simcse", model="no/such-model-anywhere", data=str(tmp_path / "missing.txt"), output_dir=str(tmp_path))


def test_csv_and_parquet_data_are_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "d.csv").write_text('sentence,label\n"a, b",1\nc,0\n')
    pq.write_table(pa.table({"text": ["x", None, "y"]}), tmp_path / "d.parquet")
    assert read_texts(tmp_path / "d.csv")[0] == ["a, b", "c"]
    assert read_texts(tmp_path / "d.parquet")[0] == ["x", "y"]


def test_settings_precedence_is_defaults_preset_file_then_flags(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("max_steps: 7\nlearning_rate: 0.001\n")
    config = build_config("simcse", preset="simcse-paper", config_file=config_file, learning_rate=0.5,
                          model="m", data="d", output_dir="o")
    assert (config.batch_size, config.max_steps, config.learning_rate, config.scale) == (128, 7, 0.5, 20.0)
    with pytest.raises(ValueError, match="unknown simcse option"):
        build_config("simcse", model="m", data="d", output_dir="o", mask_probability=0.3)
    with pytest.raises(ValueError, match="is for the mntp stage"):
        build_config("simcse", preset="mntp-mistral", model="m", data="d", output_dir="o")


def test_cli_trains_and_merges(tiny_llama_dir, corpus, tmp_path):
    from typer.testing import CliRunner

    from llm2vec_plugins.cli.main import app

    runner = CliRunner()
    out, merged = tmp_path / "cli", tmp_path / "merged"
    result = runner.invoke(app, ["train", "simcse", "--model", str(tiny_llama_dir), "--data", str(corpus),
                                 "--output-dir", str(out), "--max-steps", "2", "--batch-size", "4",
                                 "--max-length", "32", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2 steps" in result.output
    result = runner.invoke(app, ["merge", "--model", str(tiny_llama_dir), "--adapter", str(out),
                                 "--output-dir", str(merged)])
    assert result.exit_code == 0, result.output
    assert not (merged / "adapter_config.json").exists()
    assert_close_to_scale(torch.from_numpy(embeddings(merged)), torch.from_numpy(embeddings(tiny_llama_dir, out)))
    result = runner.invoke(app, ["train", "mntp", "--model", "x", "--data", str(tmp_path / "nope.txt"),
                                 "--output-dir", str(tmp_path / "o")], env={"COLUMNS": "300"})
    assert result.exit_code != 0 and "not found" in result.output


@pytest.fixture(scope="module")
def default_encoder_assets(smollm2_dir):
    from llm2vec_plugins.loading import ASSETS

    folder = ASSETS / "smollm2-135m-llm2vec"
    if not (folder / "distill" / "adapter_config.json").is_file():
        pytest.skip("the trained adapters are not in this checkout")
    return folder


@pytest.fixture(scope="module")
def default_encoder(default_encoder_assets):
    return LLM2Vec.from_pretrained("smollm2-135m-llm2vec")


@pytest.mark.slow
def test_default_encoder_is_shipped_small_and_loads_offline(default_encoder_assets, default_encoder):
    assert sum(f.stat().st_size for f in default_encoder_assets.rglob("*") if f.is_file()) <= 25_000_000
    assert default_encoder.max_length >= 512  # training truncation is not passed on to users
    assert default_encoder.encode(["A man is playing a guitar."]).shape == (1, 576)


@pytest.mark.slow
def test_default_encoder_is_pruned_and_merged_and_its_folders_load_alone(default_encoder_assets, default_encoder):
    from peft import PeftModel

    depth = json.loads((default_encoder_assets / "distill" / "config.json").read_text())["num_hidden_layers"]
    assert len(default_encoder.model.layers) == depth < 30  # SmolLM2-135M has 30
    assert not isinstance(default_encoder.model, PeftModel)  # adapters merged: no LoRA at inference
    assert not any("lora" in name for name, _ in default_encoder.model.named_parameters())
    texts = ["A man is playing a guitar.", "Stock prices fell sharply."]
    alone = LLM2Vec.from_pretrained(default_encoder_assets / "distill")  # its base names the earlier stages
    a, b = default_encoder.encode(texts), alone.encode(texts)
    assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() > 0.99999


@pytest.mark.slow
def test_default_encoder_ranks_a_paraphrase_above_an_unrelated_sentence(default_encoder):
    a, b, c = default_encoder.encode(["A man is playing a guitar.", "Someone plays the guitar.",
                                      "Stock prices fell sharply."], normalize_embeddings=True)
    assert a @ b > a @ c
