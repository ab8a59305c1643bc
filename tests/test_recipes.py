"""The default encoder's training-pair recipe never trains on evaluation data (recipes/prepare_pairs.py)."""
from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def _load(name: str):
    sys.path.insert(0, str(RECIPES))
    try:
        spec = importlib.util.spec_from_file_location(name, RECIPES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(RECIPES))


def test_stsb_train_pairs_that_touch_an_evaluation_set_are_dropped(data_dir):
    pairs = _load("prepare_pairs")
    banned = pairs.evaluation_sentences(data_dir)
    test_pair = pairs.evaldata.read_stsb(data_dir / "sts" / "stsb" / "stsb-en-test.csv")
    assert pairs.norm(test_pair.sentences1[0]) in banned  # the exclusion list covers the test sets
    rows, dropped = pairs.stsb_rows(data_dir, banned, n=10_000, rng=random.Random(0))
    assert dropped > 0 and rows
    for row in rows:
        assert pairs.norm(row["query"]) not in banned and pairs.norm(row["positive"]) not in banned
        assert row["negative"] not in (row["query"], row["positive"])


def test_overlap_index_ranks_shared_rare_words_first():
    pairs = _load("prepare_pairs")
    index = pairs.OverlapIndex(["the cat sat on the mat", "a dog barked at the mailman", "quantum chromodynamics"])
    assert index.ranked("mailman dog")[0] == 1
    assert index.ranked("chromodynamics")[0] == 2


def test_overlap_index_breaks_ties_by_position_whatever_the_hash_seed():
    pairs = _load("prepare_pairs")
    index = pairs.OverlapIndex(["a dog here", "a cat there", "a cow elsewhere"])
    for query in ("cow cat dog", "dog cat cow", "cat cow dog"):
        assert index.ranked(query) == [0, 1, 2]
