"""Distillation: the similarity-matching loss, neighbourhood batches, the cached teacher embeddings, and
the stage end to end with a real sentence-transformers teacher (tiny, random) and an LLM2Vec teacher."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llm2vec_plugins import LLM2Vec
from llm2vec_plugins.training import train
from llm2vec_plugins.training.config import build_config
from llm2vec_plugins.training.distill import NeighbourBatchSampler
from llm2vec_plugins.training.losses import principal_map, rotate_into, similarity_distill_loss
from llm2vec_plugins.training.teacher import Teacher, load_teacher, teacher_embeddings
from tests.tiny_models import build_tiny_model, build_tiny_sentence_transformer

SENTENCES = [f"{who} {what} {where}" for who in ("a man", "two dogs", "the fox", "a girl")
             for what in ("plays guitar", "jumps over", "runs fast", "eats food")
             for where in ("in the field", "on the street", "at home")]


@pytest.fixture(scope="module")
def st_teacher(tmp_path_factory, tiny_tokenizer_dir):
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("st") / "teacher", tiny_tokenizer_dir)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("distill-data") / "texts.txt"
    path.write_text("\n".join(SENTENCES) + "\n")
    return path


@pytest.mark.parametrize("mode", ["mse", "kl"])
def test_loss_is_zero_for_the_teachers_geometry_in_another_dimension(mode):
    torch.manual_seed(0)
    teacher = torch.nn.functional.normalize(torch.randn(16, 8), dim=-1)
    rotation, _ = torch.linalg.qr(torch.randn(12, 12))
    student = torch.cat([teacher, torch.zeros(16, 4)], dim=1) @ rotation * 3.0  # other dim, rotated, scaled
    assert similarity_distill_loss(student, teacher, mode) < 1e-6
    assert similarity_distill_loss(torch.randn(16, 12), teacher, mode) > 1e-2


def test_an_unknown_loss_name_is_a_clear_error_in_the_settings_and_in_the_loss():
    with pytest.raises(ValueError, match="distill_loss must be one of mse, kl, align, got 'cosine'"):
        build_config("distill", model="m", data="d", output_dir="o", teacher="t", distill_loss="cosine")
    with pytest.raises(ValueError, match="unknown distillation loss 'cosine'; choose one of mse, kl, align"):
        similarity_distill_loss(torch.randn(4, 8), torch.randn(4, 8), "cosine")


def test_rotation_carries_the_teacher_onto_a_rotated_student_and_keeps_its_cosines():
    torch.manual_seed(0)
    teacher = torch.nn.functional.normalize(torch.randn(64, 8), dim=-1)
    frame, _ = torch.linalg.qr(torch.randn(12, 12))
    student = teacher @ frame[:8] * 3.0  # the teacher's geometry in another frame, dimension and scale
    targets = teacher @ rotate_into(teacher, student)
    assert torch.allclose(targets, torch.nn.functional.normalize(student, dim=-1), atol=1e-5)
    assert similarity_distill_loss(student, targets, "align") < 1e-6
    other = teacher @ rotate_into(teacher, torch.randn(64, 12))  # any student: the teacher's cosines stay
    assert torch.allclose(other @ other.T, teacher @ teacher.T, atol=1e-5)
    assert similarity_distill_loss(torch.randn(64, 12), other, "align") > 0.1
    with pytest.raises(ValueError, match="does not fit"):
        rotate_into(torch.randn(64, 16), torch.randn(64, 12))
    with pytest.raises(ValueError, match="rotated into"):
        similarity_distill_loss(torch.randn(4, 12), torch.randn(4, 8), "align")


def test_principal_map_keeps_the_cosines_of_a_teacher_that_spans_few_directions():
    torch.manual_seed(0)
    frame, _ = torch.linalg.qr(torch.randn(16, 16))
    teacher = torch.nn.functional.normalize(torch.randn(64, 6) @ frame[:6], dim=-1)  # 16-d rows in 6 directions
    basis, kept = principal_map(teacher, 8)
    narrow = teacher @ basis
    assert basis.shape == (16, 8) and torch.allclose(basis.T @ basis, torch.eye(8), atol=1e-5)
    assert kept == pytest.approx(1.0) and torch.allclose(narrow @ narrow.T, teacher @ teacher.T, atol=1e-5)
    wide = torch.nn.functional.normalize(torch.randn(256, 16), dim=-1)  # full rank: some length must go
    basis, kept = principal_map(wide, 4)
    assert kept == pytest.approx((wide @ basis).pow(2).sum(-1).mean().item(), rel=1e-4)
    assert kept > (wide @ frame[:, :4]).pow(2).sum(-1).mean().item()  # beats another 4-d basis
    with pytest.raises(ValueError, match="cannot keep 17 of 16"):
        principal_map(wide, 17)


def test_neighbour_batches_group_the_teachers_clusters_and_use_each_text_once():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(16, 32))
    vectors = np.repeat(centres, 4, axis=0) + 0.01 * rng.normal(size=(64, 32))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sampler = NeighbourBatchSampler(vectors, batch_size=4, neighbours=3, seed=1, window=64)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 16
    assert sorted(i for b in batches for i in b) == list(range(64))
    assert all(len({i // 4 for i in b}) == 1 for b in batches)  # each batch is one cluster
    assert batches == list(NeighbourBatchSampler(vectors, batch_size=4, neighbours=3, seed=1, window=64))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    random_batches = list(NeighbourBatchSampler(vectors, batch_size=4, neighbours=0, seed=1))
    assert sum(len({i // 4 for i in b}) == 1 for b in random_batches) < 4


def test_neighbour_batches_split_one_global_batch_over_processes():
    vectors = np.eye(8, dtype=np.float32)
    batches = list(NeighbourBatchSampler(vectors, batch_size=2, neighbours=1, num_processes=2))
    assert len(batches) == 4 and all(len(b) == 2 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(8))


def test_teacher_embeddings_are_cached_and_resume_part_by_part(st_teacher, tmp_path, monkeypatch):
    monkeypatch.setattr("llm2vec_plugins.training.teacher.PART_ROWS", 10)
    real = load_teacher(str(st_teacher))
    calls = []
    counting = Teacher(real.name, lambda texts, batch: calls.append(len(texts)) or real.encode(texts, batch))
    first = teacher_embeddings(counting, SENTENCES, tmp_path, progress=False)
    assert first.shape == (48, 24) and np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    assert calls == [10, 10, 10, 10, 8]
    again = teacher_embeddings(counting, SENTENCES, tmp_path, progress=False)
    assert calls == [10, 10, 10, 10, 8] and np.array_equal(first, again)
    (part,) = [p for p in next(tmp_path.iterdir()).glob("part-00002.npy")]
    part.unlink()  # as if the run had been killed while computing it
    resumed = teacher_embeddings(counting, SENTENCES, tmp_path, progress=False)
    assert calls[5:] == [10] and np.allclose(resumed, first, atol=1e-6)
    other = teacher_embeddings(counting, SENTENCES[:-1], tmp_path, progress=False)  # other texts, other key
    assert other.shape == (47, 24) and len(list(tmp_path.iterdir())) == 2


def _mse_to_teacher(student: np.ndarray, teacher: np.ndarray) -> float:
    s = student / np.linalg.norm(student, axis=1, keepdims=True)
    return float(((s @ s.T - teacher @ teacher.T) ** 2).mean())


@pytest.mark.parametrize("mode", ["mse", "align"])
def test_distill_stage_moves_the_student_towards_the_teachers_similarities(tiny_tokenizer_dir, st_teacher, corpus,
                                                                          tmp_path, mode):
    student = build_tiny_model("llama", tmp_path / "student", tiny_tokenizer_dir, layers=3)
    teacher = load_teacher(str(st_teacher)).encode(SENTENCES, 16)
    before = _mse_to_teacher(LLM2Vec.from_pretrained(student, device="cpu").encode(SENTENCES), teacher)
    result = train("distill", model=str(student), data=str(corpus), teacher=str(st_teacher), num_layers="2",
                   output_dir=str(tmp_path / "out"), max_steps=40, batch_size=12, learning_rate=3e-3, distill_loss=mode,
                   lora_r=8, lora_alpha=16, progress=False, save_steps=1000, logging_steps=5,
                   instructions="Retrieve semantically similar text:", instruction_probability=0.5)
    assert result.global_step == 40
    trained = LLM2Vec.from_pretrained(tmp_path / "out", device="cpu")
    assert len(trained.model.layers) == 2  # the adapter folder carries the pruned depth
    assert json.loads((tmp_path / "out" / "config.json").read_text())["num_hidden_layers"] == 2
    after = _mse_to_teacher(trained.encode(SENTENCES), teacher)
    assert after < 0.5 * before, (before, after)
    assert (tmp_path / "out" / "teacher").is_dir()


def test_align_projects_a_teacher_wider_than_the_student(tiny_tokenizer_dir, corpus, tmp_path, capfd):
    wide = build_tiny_sentence_transformer(tmp_path / "wide", tiny_tokenizer_dir, hidden=48)  # student: 32-d
    student = build_tiny_model("llama", tmp_path / "student", tiny_tokenizer_dir, layers=2)
    teacher = load_teacher(str(wide)).encode(SENTENCES, 16)
    before = _mse_to_teacher(LLM2Vec.from_pretrained(student, device="cpu").encode(SENTENCES), teacher)
    train("distill", model=str(student), data=str(corpus), teacher=str(wide), output_dir=str(tmp_path / "out"),
          max_steps=40, batch_size=12, learning_rate=3e-3, distill_loss="align", lora_r=8, lora_alpha=16,
          progress=False, save_steps=1000)
    assert "the 48-dimensional teacher projected onto its 32 principal directions" in capfd.readouterr().err
    after = _mse_to_teacher(LLM2Vec.from_pretrained(tmp_path / "out", device="cpu").encode(SENTENCES), teacher)
    assert after < 0.5 * before, (before, after)


def test_l3prune_chooses_the_depth_before_training(tiny_tokenizer_dir, st_teacher, corpus, tmp_path, capfd):
    student = build_tiny_model("llama", tmp_path / "student", tiny_tokenizer_dir, layers=4)
    train("distill", model=str(student), data=str(corpus), teacher=str(st_teacher), num_layers="l3prune-small",
          output_dir=str(tmp_path / "out"), max_steps=2, batch_size=8, progress=False, save_steps=1000)
    message = [line for line in capfd.readouterr().err.splitlines() if "L3Prune" in line][0]
    losses = [float(x) for x in message.split("depth: ")[1].split(";")[0].split(", ")]
    keep = int(message.split("keeps ")[1].split(" of")[0])
    assert len(losses) == 4 and keep == int(np.argmin(losses[:2])) + 1
    assert len(LLM2Vec.from_pretrained(tmp_path / "out", device="cpu").model.layers) == keep


def test_an_llm2vec_encoder_can_teach(tiny_model_dirs, corpus, tmp_path):
    teacher = load_teacher(str(tiny_model_dirs("qwen2")))
    vectors = teacher.encode(SENTENCES[:5], 4)
    assert vectors.shape == (5, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_distill_needs_a_teacher(corpus, tmp_path):
    with pytest.raises(ValueError, match="teacher is required"):
        train("distill", model="x", data=str(corpus), output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="supervised or distill"):
        train("simcse", model="x", data=str(corpus), output_dir=str(tmp_path), num_layers="l3prune-large")


def test_trainable_layers_trains_only_the_top_layers(tiny_tokenizer_dir, st_teacher, corpus, tmp_path):
    from safetensors.torch import load_file

    student = build_tiny_model("llama", tmp_path / "student", tiny_tokenizer_dir, layers=3)
    train("distill", model=str(student), data=str(corpus), teacher=str(st_teacher), trainable_layers=1,
          output_dir=str(tmp_path / "out"), max_steps=10, batch_size=12, learning_rate=3e-3, lora_r=8,
          lora_alpha=16, progress=False, save_steps=1000)
    keys = load_file(tmp_path / "out" / "adapter_model.safetensors")
    assert keys and all(".layers.2." in k for k in keys), sorted(keys)[:3]
    assert {k.split(".layers.2.")[1].split(".")[1] for k in keys} >= {"q_proj", "down_proj"}  # all linear
    base, trained = (LLM2Vec.from_pretrained(p, device="cpu") for p in (student, tmp_path / "out"))
    features = base.tokenize(SENTENCES[:4])
    with torch.no_grad():
        below = [m.model(**features, output_hidden_states=True, use_cache=False).hidden_states for m in (base, trained)]
    assert torch.allclose(below[0][2], below[1][2], atol=1e-6)  # the input of layer 2: lower layers untouched
    assert not torch.allclose(below[0][3], below[1][3], atol=1e-4)  # the top layer was trained


def test_trainable_layers_are_checked_against_the_depth(tmp_path, tiny_tokenizer_dir, corpus):
    from transformers import AutoModel

    from llm2vec_plugins.training.lora import apply_lora

    decoder = AutoModel.from_pretrained(build_tiny_model("qwen2", tmp_path / "m", tiny_tokenizer_dir, layers=2))
    with pytest.raises(ValueError, match="trainable_layers=3 but the decoder has 2 layers"):
        apply_lora(decoder, trainable_layers=3)
    peft_model = apply_lora(decoder, target_modules="q_proj,v_proj", trainable_layers=1)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all(".layers.1." in n and ("q_proj" in n or "v_proj" in n) for n in trainable)
    with pytest.raises(ValueError, match="trainable_layers needs a fixed depth"):
        train("distill", model="x", data=str(corpus), teacher="t", output_dir=str(tmp_path / "o"),
              num_layers="l3prune-small", trainable_layers=1)
