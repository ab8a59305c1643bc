"""End-to-end evaluation with a tiny random model: each task type on a slice, the CLI, and the mteb adapter."""
from __future__ import annotations

import json

import numpy as np
import pytest

from llm2vec_plugins.evaluation import (
    STS_INSTRUCTION,
    RetrievalData,
    STSPairs,
    evaluate,
    evaluate_retrieval,
    evaluate_sts,
    read_stsb,
)
from llm2vec_plugins.evaluation.runner import encode_texts

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:.*longer than max_length")]


@pytest.fixture(scope="module")
def tiny_encoder(tiny_llama_dir):
    from llm2vec_plugins import LLM2Vec

    # Short max_length keeps the 1,400 Cranfield abstracts cheap for the random 2-layer model.
    return LLM2Vec.from_pretrained(tiny_llama_dir, max_length=64, doc_max_length=64)


def test_each_task_type_runs_on_a_slice_and_reports_mteb_style_scores(tiny_encoder, data_dir, tmp_path):
    report = evaluate(tiny_encoder, "sts-b,sts15,cranfield", data_dir, limit=12, model_name="tiny-llama")
    by_task = {r.task: r for r in report.results}
    assert list(by_task) == ["sts-b", "sts15", "cranfield"]
    assert by_task["sts-b"].num_examples == 12 and by_task["cranfield"].num_examples == 12
    assert by_task["sts-b"].main_metric == "cosine_spearman"
    assert by_task["cranfield"].main_metric == "ndcg_at_10"
    assert set(by_task["cranfield"].metrics) >= {"ndcg_at_10", "recall_at_100"}
    for result in report.results:
        assert -100 <= result.score <= 100 and np.isfinite(result.score)
    assert by_task["sts-b"].instruction == STS_INSTRUCTION
    assert by_task["cranfield"].document_instruction == ""
    assert report.average == pytest.approx(np.mean([r.score for r in report.results]))

    saved = json.loads(report.to_json(tmp_path / "out.json"))
    assert json.loads((tmp_path / "out.json").read_text()) == saved
    assert saved["model"] == "tiny-llama" and saved["package_version"]
    assert saved["settings"]["bidirectional"] is True and saved["settings"]["limit"] == 12
    assert saved["results"]["sts15"]["score"] == by_task["sts15"].score
    assert {"average", "average_sts", "average_retrieval", "seconds", "started_at"} <= set(saved)


def test_sts_score_is_spearman_of_pair_cosines(tiny_encoder, data_dir):
    pairs = read_stsb(data_dir / "sts" / "stsb" / "stsb-en-test.csv").subset(16)
    scores = evaluate_sts(tiny_encoder, pairs, STS_INSTRUCTION)
    from scipy.stats import spearmanr

    a = tiny_encoder.encode([[STS_INSTRUCTION, s] for s in pairs.sentences1])
    b = tiny_encoder.encode([[STS_INSTRUCTION, s] for s in pairs.sentences2])
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert scores["cosine_spearman"] == pytest.approx(100 * spearmanr(cosine, pairs.scores)[0], abs=1e-3)


def test_instruction_reaches_the_encoder(tiny_encoder):
    texts = ["A man is playing a guitar.", "Two dogs run in a field."]
    plain = encode_texts(tiny_encoder, texts)
    instructed = encode_texts(tiny_encoder, texts, STS_INSTRUCTION)
    assert not np.allclose(plain, instructed)  # bidirectional: pooled tokens attend to the instruction


def test_repeated_texts_are_encoded_once_but_returned_in_place(tiny_encoder):
    texts = ["a cat", "a dog", "a cat"]
    out = encode_texts(tiny_encoder, texts)
    np.testing.assert_allclose(out[0], out[2])
    np.testing.assert_allclose(out[:2], tiny_encoder.encode(["a cat", "a dog"]), rtol=1e-5, atol=1e-6)


def test_retrieval_ranks_a_document_identical_to_the_query_first(tiny_encoder):
    # With no instruction on either side, a query's copy in the corpus has cosine 1: nDCG@10 must be 100.
    queries = {"1": "The quick brown fox jumps.", "2": "Language models as text encoders.", "3": "Emoji and symbols."}
    corpus = {f"d{q}": text for q, text in queries.items()} | {"x1": "A man is playing a guitar on the street.",
                                                              "x2": "Given a question, retrieve passages."}
    data = RetrievalData(corpus, queries, {q: {f"d{q}": 1.0} for q in queries})
    scores = evaluate_retrieval(tiny_encoder, data, instruction="", document_instruction="")
    assert scores["ndcg_at_1"] == pytest.approx(100.0)
    assert scores["recall_at_100"] == pytest.approx(100.0)
    # Pointing each query at another query's copy instead must score lower.
    shifted = RetrievalData(corpus, queries, {"1": {"d2": 1.0}, "2": {"d3": 1.0}, "3": {"d1": 1.0}})
    assert evaluate_retrieval(tiny_encoder, shifted)["ndcg_at_1"] == 0.0


def test_instruction_overrides_are_applied_and_recorded(tiny_encoder, data_dir):
    report = evaluate(tiny_encoder, ["sts-b"], data_dir, limit=8, instructions={"sts": ""})
    assert report.results[0].instruction == ""
    with pytest.raises(ValueError, match="valid tasks"):
        evaluate(tiny_encoder, ["sts-b"], data_dir, limit=8, instructions={"sts-x": "typo"})


# --- CLI ---------------------------------------------------------------------------------------------------------


def _run_cli(*args):
    from typer.testing import CliRunner

    from llm2vec_plugins.cli.main import app

    return CliRunner().invoke(app, ["eval", *args])


def test_cli_prints_a_table_and_writes_json(tiny_llama_dir, data_dir, tmp_path):
    out = tmp_path / "report.json"
    result = _run_cli("--model", str(tiny_llama_dir), "--tasks", "sick-r,sts13", "--limit", "10",
                      "--data-dir", str(data_dir), "--json", str(out), "--no-bidirectional")
    assert result.exit_code == 0, result.output
    assert "sick-r" in result.output and "average" in result.output
    report = json.loads(out.read_text())
    assert list(report["results"]) == ["sick-r", "sts13"]
    assert report["settings"]["bidirectional"] is False
    assert report["settings"]["num_layers"] == 2
    assert report["average"] == pytest.approx(np.mean([r["score"] for r in report["results"].values()]))


def test_cli_num_layers_evaluates_a_pruned_model(tiny_llama_dir, data_dir, tmp_path):
    out = tmp_path / "report.json"
    result = _run_cli("--model", str(tiny_llama_dir), "--tasks", "sick-r", "--limit", "10",
                      "--data-dir", str(data_dir), "--json", str(out), "--num-layers", "1")
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["settings"]["num_layers"] == 1


def test_cli_unknown_task_lists_valid_tasks(tiny_llama_dir, data_dir):
    result = _run_cli("--model", str(tiny_llama_dir), "--tasks", "sts-b,msmarco", "--data-dir", str(data_dir))
    assert result.exit_code == 2
    assert "msmarco" in result.output and "sick-r" in result.output and "cranfield" in result.output


def test_cli_missing_data_file_names_it(tiny_llama_dir, tmp_path):
    (tmp_path / "sts").mkdir()
    result = _run_cli("--model", str(tiny_llama_dir), "--tasks", "sick-r", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "SICK_test_annotated.txt" in result.output and "expected" in result.output


# --- mteb adapter ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_sts_task(data_dir):
    """A real mteb STS task whose load_data reads a slice of the local STS-B file: no hub access."""
    mteb = pytest.importorskip("mteb", reason="the mteb extra is not installed")
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    pairs = read_stsb(data_dir / "sts" / "stsb" / "stsb-en-test.csv").subset(24)

    class LocalSTSB(AbsTaskSTS):
        metadata = TaskMetadata(
            name="LocalSTSBSlice", description="24 STS-B test pairs read from a local file.",
            reference="https://github.com/embeddings-benchmark/mteb", dataset={"path": "local", "revision": "1"},
            type="STS", category="t2t", modalities=["text"], eval_splits=["test"], eval_langs=["eng-Latn"],
            main_score="cosine_spearman", date=("2017-01-01", "2017-12-31"), domains=[], task_subtypes=[],
            license="cc-by-sa-4.0", annotations_creators="human-annotated", dialect=[], sample_creation="found",
            bibtex_citation="",
        )
        min_score, max_score = 0, 5

        def load_data(self, **kwargs) -> None:
            self.dataset = DatasetDict({"test": Dataset.from_dict(
                {"sentence1": pairs.sentences1, "sentence2": pairs.sentences2, "score": pairs.scores})})
            self.data_loaded = True

    assert mteb is not None
    return LocalSTSB(), pairs


def test_mteb_scores_an_llm2vec_encoder_like_our_own_sts_evaluation(tiny_encoder, local_sts_task):
    from llm2vec_plugins.evaluation.mteb import evaluate_mteb

    task, pairs = local_sts_task
    result = evaluate_mteb(tiny_encoder, [task], model_name="tests/tiny-llama", show_progress_bar=False)
    (task_result,) = result.task_results
    mteb_spearman = task_result.scores["test"][0]["cosine_spearman"]
    # Same data, same instruction (MTEB's STS prompt -> "Retrieve semantically similar text:"), same metric.
    ours = evaluate_sts(tiny_encoder, pairs, STS_INSTRUCTION)["cosine_spearman"]
    assert 100 * mteb_spearman == pytest.approx(ours, abs=1e-3)


def test_mteb_adapter_uses_the_papers_instructions(tiny_encoder):
    pytest.importorskip("mteb", reason="the mteb extra is not installed")
    import mteb
    from mteb.types import PromptType

    from llm2vec_plugins.evaluation.mteb import LLM2VecMTEBEncoder

    model = LLM2VecMTEBEncoder(tiny_encoder, instructions={"STS12": "Find similar sentences."})
    scifact = mteb.get_task("SciFact").metadata
    assert model.instruction_for(scifact, PromptType.query) == (
        "Given a scientific claim, retrieve documents that support or refute the claim:")
    assert model.instruction_for(scifact, PromptType.document) == ""  # documents are encoded bare
    assert model.instruction_for(mteb.get_task("STSBenchmark").metadata, None) == STS_INSTRUCTION
    assert model.instruction_for(mteb.get_task("STS12").metadata, None) == "Find similar sentences:"
    # A task outside the paper's table falls back to MTEB's own prompt, in LLM2Vec's form.
    assert model.instruction_for(mteb.get_task("SciFact-PL").metadata, PromptType.query).endswith(":")
    assert model.mteb_model_meta.embed_dim == tiny_encoder.embedding_dim


def test_sts_pairs_reject_misaligned_columns():
    with pytest.raises(ValueError, match="same length"):
        STSPairs(["a"], ["b", "c"], [1.0])
