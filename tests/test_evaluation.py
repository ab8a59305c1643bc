"""Evaluation metrics against hand-computed values, readers against the real benchmark files, task names."""
from __future__ import annotations

import math

import numpy as np
import pytest

from llm2vec_plugins.evaluation import (
    TASKS,
    DataFileError,
    RetrievalData,
    STSPairs,
    UnknownTaskError,
    as_llm2vec_instruction,
    cosine_similarity_pairs,
    cranfield_gain,
    get_tasks,
    ndcg_at_k,
    read_cranfield,
    read_semeval_sts_year,
    read_sick_relatedness,
    read_stsb,
    recall_at_k,
    spearman,
)
from llm2vec_plugins.evaluation.data import read_semeval_sts_file
from llm2vec_plugins.evaluation.metrics import top_k_by_cosine

# --- Spearman ---------------------------------------------------------------------------------------------


def test_spearman_of_identical_and_reversed_rankings_is_plus_and_minus_one():
    assert spearman([1, 2, 3, 4, 5], [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_uses_ranks_not_values():
    # one swapped neighbour pair in 4 items: 1 - 6 * (1 + 1) / (4 * (16 - 1)) = 0.8
    assert spearman([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(0.8)
    # a monotonic but non-linear relation is still a perfect rank correlation
    assert spearman([1, 2, 3, 4], [1, 8, 27, 1000]) == pytest.approx(1.0)


def test_spearman_gives_ties_their_average_rank():
    # x ranks (1, 2.5, 2.5, 4) vs y ranks (1, 2, 3, 4): Pearson of ranks = 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10))


def test_spearman_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        spearman([1, 2, 3], [1, 2])


def test_cosine_similarity_pairs_of_known_vectors():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [2.0, 2.0], [0.0, 0.0]])
    b = np.array([[0.0, 3.0], [5.0, 0.0], [-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(cosine_similarity_pairs(a, b), [0.0, 1.0, -1.0, 0.0], atol=1e-12)


# --- nDCG / recall ----------------------------------------------------------------------------------------


def test_ndcg_of_the_ideal_ranking_is_one():
    assert ndcg_at_k(["a", "b", "c"], {"a": 3, "b": 2, "c": 1}) == pytest.approx(1.0)


def test_ndcg_of_a_known_ranking_uses_linear_gains_and_log2_discounts():
    # ranking c, b, a with gains a=3, b=2, c=1:
    # DCG = 1/log2(2) + 2/log2(3) + 3/log2(4); ideal = 3/log2(2) + 2/log2(3) + 1/log2(4)
    dcg = 1 + 2 / math.log2(3) + 3 / 2
    idcg = 3 + 2 / math.log2(3) + 1 / 2
    assert ndcg_at_k(["c", "b", "a"], {"a": 3, "b": 2, "c": 1}) == pytest.approx(dcg / idcg)
    assert dcg / idcg == pytest.approx(0.78999, abs=1e-5)


def test_ndcg_counts_unjudged_and_non_relevant_documents_as_zero_gain():
    # "x" is unjudged, "n" judged not relevant (gain 0): only "a" at rank 3 scores.
    assert ndcg_at_k(["x", "n", "a"], {"a": 1, "n": 0}) == pytest.approx(1 / math.log2(4))


def test_ndcg_cuts_the_ranking_at_k_but_builds_the_ideal_from_all_judgments():
    gains = {"a": 1, "b": 1}
    assert ndcg_at_k(["x", "a"], gains, k=1) == 0.0
    # at k=2 the ideal holds both relevant documents: (1/log2(3)) / (1 + 1/log2(3))
    assert ndcg_at_k(["x", "a"], gains, k=2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_ndcg_without_relevant_documents_is_zero():
    assert ndcg_at_k(["a"], {"a": 0}) == 0.0


def test_recall_at_k_counts_relevant_documents_in_the_top_k():
    gains = {"a": 3, "b": 1, "c": 2, "n": 0}
    assert recall_at_k(["a", "x", "b", "c"], gains, k=2) == pytest.approx(1 / 3)
    assert recall_at_k(["a", "x", "b", "c"], gains, k=4) == pytest.approx(1.0)


def test_top_k_by_cosine_orders_documents_by_similarity():
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    docs = np.array([[0.0, 1.0], [1.0, 0.1], [1.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(top_k_by_cosine(queries, docs, k=3), [[1, 2, 0], [0, 2, 1]])


# --- Cranfield gains, instructions ------------------------------------------------------------------------


def test_cranfield_relevance_grades_map_to_decreasing_gains():
    assert [cranfield_gain(r) for r in (1, 2, 3, 4, -1, 5)] == [4.0, 3.0, 2.0, 1.0, 0.0, 0.0]


def test_mteb_prompts_are_rewritten_to_llm2vec_instructions():
    assert as_llm2vec_instruction("Retrieve semantically similar text.") == "Retrieve semantically similar text:"
    assert as_llm2vec_instruction("Given a claim, find documents") == "Given a claim, find documents:"
    assert as_llm2vec_instruction("Already:") == "Already:"
    assert as_llm2vec_instruction("") == ""


def test_sts_tasks_use_the_papers_symmetric_instruction_and_retrieval_leaves_documents_bare():
    for task in get_tasks("sts"):
        assert task.instruction == "Retrieve semantically similar text:"
    cranfield = TASKS["cranfield"]
    assert cranfield.instruction.endswith(":") and cranfield.document_instruction == ""


# --- Task names ---------------------------------------------------------------------------------------------


def test_task_names_are_case_insensitive_and_accept_mteb_names_and_groups():
    assert [t.name for t in get_tasks("STSBenchmark, SICK-R,cranfield")] == ["sts-b", "sick-r", "cranfield"]
    assert [t.name for t in get_tasks(["sts"])] == ["sts-b", "sts12", "sts13", "sts14", "sts15", "sts16", "sick-r"]
    assert [t.name for t in get_tasks("sts-b,sts-b")] == ["sts-b"]


def test_unknown_task_name_lists_the_valid_ones():
    with pytest.raises(UnknownTaskError) as err:
        get_tasks("sts-b,stsx")
    message = str(err.value)
    assert "'stsx'" in message
    for name in TASKS:
        assert name in message


# --- Readers on synthetic files -------------------------------------------------------------------------------


def test_semeval_rows_without_gold_score_are_skipped(tmp_path):
    path = tmp_path / "x.test.tsv"
    path.write_text('4.2\tA "quoted sentence.\tAnother one.\n\tno score here\tskipped\n0\tc\td\n', encoding="utf-8")
    pairs = read_semeval_sts_file(path)
    assert pairs.scores == [4.2, 0.0]
    assert pairs.sentences1 == ['A "quoted sentence.', "c"]


def test_missing_data_file_names_the_file_and_the_expected_layout(tmp_path):
    with pytest.raises(DataFileError) as err:
        TASKS["sts-b"].load(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "sts" / "stsb" / "stsb-en-test.csv") in message
    assert "expected layout" in message and "sentence1,sentence2,score" in message
    with pytest.raises(DataFileError, match="cran.all.1400"):
        read_cranfield(tmp_path)


def test_non_numeric_score_names_file_and_line(tmp_path):
    path = tmp_path / "stsb.csv"
    path.write_text("a,b,3.0\nc,d,high\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"stsb.csv:2: score 'high'"):
        read_stsb(path)


def test_subset_spreads_over_the_whole_set_deterministically():
    pairs = STSPairs([f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)], list(range(10)))
    assert pairs.subset(3).scores == [0, 4, 9]
    assert pairs.subset(3).sentences2 == ["b0", "b4", "b9"]  # pairs stay aligned
    assert len(pairs.subset(None)) == len(pairs.subset(50)) == 10
    data = RetrievalData({"d": "doc"}, {"1": "q1", "2": "q2", "3": "q3"}, {"1": {"d": 1}, "2": {"d": 0}, "3": {"d": 2}})
    assert list(data.subset(5).queries) == ["1", "3"]  # only queries with a relevant document


# --- Readers on the real benchmark files ----------------------------------------------------------------------


@pytest.mark.parametrize(("year", "pairs"), [(2012, 2358), (2013, 1500), (2014, 3750), (2015, 3000), (2016, 1186)])
def test_semeval_years_have_mtebs_number_of_scored_pairs(data_dir, year, pairs):
    assert len(read_semeval_sts_year(data_dir / "sts" / "semeval" / str(year))) == pairs


def test_stsb_and_sick_test_sets(data_dir):
    stsb = read_stsb(data_dir / "sts" / "stsb" / "stsb-en-test.csv")
    assert len(stsb) == 1379
    assert (stsb.sentences1[0], stsb.sentences2[0], stsb.scores[0]) == (
        "A girl is styling her hair.", "A girl is brushing her hair.", 2.5)
    sick = read_sick_relatedness(data_dir / "sts" / "sick2014" / "SICK_test_annotated.txt")
    assert len(sick) == 4927
    assert min(sick.scores) >= 1 and max(sick.scores) <= 5


def test_cranfield_queries_are_numbered_by_position_and_documents_are_title_plus_text(data_dir):
    data = read_cranfield(data_dir / "retrieval" / "cranfield")
    assert len(data.corpus) == 1400 and len(data.queries) == 225
    # The third query in cran.qry has `.I 004`; cranqrel calls it query 3.
    assert data.queries["3"].startswith("what problems of heat conduction in composite slabs")
    assert data.corpus["1"].startswith("experimental investigation of the aerodynamics of a wing in a slipstream . "
                                       "experimental investigation")
    assert data.qrels["1"]["184"] == 3.0  # cranqrel "1 184 2"
    assert all(any(g > 0 for g in judged.values()) for judged in data.qrels.values())
    assert sum(g > 0 for judged in data.qrels.values() for g in judged.values()) == 1612  # the README's count
