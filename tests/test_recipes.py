"""The default encoder's recipes never train on evaluation data (recipes/prepare_pairs.py, prepare_corpus.py)."""
from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

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


# --- the corpus recipe (recipes/prepare_corpus.py) keeps evaluation text out of the training text ---------

@pytest.fixture(scope="module")
def corpus():
    return _load("prepare_corpus")


@pytest.fixture(scope="module")
def banned(corpus, data_dir):
    """The recipe's own banned set, built once for this module (reading every evaluation set takes ~1 s)."""
    return corpus.evaluation_texts(data_dir)


@pytest.fixture(scope="module")
def eval_sentences(corpus, data_dir):
    """Real sentences of the evaluation sets, as their files have them (the recipe's readers)."""
    evaldata = corpus._prepare_pairs().evaldata
    sts = data_dir / "sts"
    stsb = evaldata.read_stsb(sts / "stsb" / "stsb-en-test.csv")
    onwn = evaldata.read_semeval_sts_file(sts / "semeval" / "2012" / "OnWN.test.tsv")
    sick = evaldata.read_sick_relatedness(sts / "sick2014" / "SICK_test_annotated.txt")
    cranfield = evaldata.read_cranfield(data_dir / "retrieval" / "cranfield")
    # Sentences that stand alone in a passage: a capital first, a full stop last (so the splitter finds them).
    def whole(texts):
        return [s.strip() for s in texts if s.strip()[:1].isupper() and s.strip().endswith(".")]

    # Cranfield is lower case with " ." ends; written as a corpus would write its second sentence.
    doc = next(d for d in cranfield.corpus.values() if len(corpus.ANY_SENTENCE_END.split(d)) >= 3)
    doc_sentence = corpus.ANY_SENTENCE_END.split(doc)[1].rstrip(" .")
    # An OnWN text of several WordNet definitions ("def; def"): the wordnet source writes each as a line.
    norm = corpus._prepare_pairs().norm
    parted = next(s for s in onwn.sentences1 if s.count(";") == 1 and all(len(norm(p).split()) >= 4
                                                                          for p in s.split(";")))
    return {"stsb": whole(stsb.sentences1)[:20], "sick": whole(sick.sentences1)[:20],
            "onwn": [s.strip() for s in onwn.sentences1[:20]], "onwn_parts": [p.strip() for p in parted.split(";")],
            "cranfield_doc": doc_sentence[0].upper() + doc_sentence[1:] + ".",
            "cranfield_query": cranfield.queries["1"]}


def _contaminated(corpus, banned, line):
    norm = corpus._prepare_pairs().norm
    return [piece for piece in corpus.pieces(line) if norm(piece) in banned]


def test_banned_set_covers_cranfield_sick_and_onwn(corpus, banned, eval_sentences):
    norm = corpus._prepare_pairs().norm
    assert norm(eval_sentences["cranfield_doc"]) in banned  # a sentence of a document, not only its whole text
    assert norm(eval_sentences["cranfield_query"]) in banned
    assert norm(eval_sentences["sick"][0]) in banned
    assert norm(eval_sentences["onwn"][0]) in banned
    assert all(norm(part) in banned for part in eval_sentences["onwn_parts"])
    assert norm(eval_sentences["stsb"][0]) in banned
    assert "" not in banned and min(len(b.split()) for b in banned) >= 1


def test_decontaminate_drops_lines_that_hold_an_evaluation_sentence(corpus, banned, eval_sentences):
    norm = corpus._prepare_pairs().norm
    stsb, sick, onwn = eval_sentences["stsb"], eval_sentences["sick"], eval_sentences["onwn"]
    clean = ["The recipe keeps this sentence, since no evaluation set holds it.",
             "A second clean sentence follows the first one. And a third one closes this short passage.",
             'Of a kind not met in any benchmark; "the lamp was not of a kind met in any benchmark"',
             # An evaluation sentence inside a longer sentence is not that sentence: kept.
             "Yesterday " + stsb[1][0].lower() + stsb[1][1:]]
    assert not any(norm(line) in banned for line in clean)
    dirty = [stsb[0],  # the sentence itself
             sick[0].upper(),  # normalisation ignores case and punctuation
             f"{clean[0]} {sick[1]} It ended there.",  # one sentence of a passage
             f"{clean[1]} {eval_sentences['cranfield_doc']}",
             # A WordNet gloss whose definition is banned.
             f'{onwn[0].rstrip(".")}; "the lamp was not of a kind met in any benchmark"',
             f'Of a kind not met in any benchmark; "{stsb[2]}"',  # banned usage example
             # One definition of an OnWN text "def; def", as the wordnet source writes it.
             eval_sentences["onwn_parts"][1][0].upper() + eval_sentences["onwn_parts"][1][1:] + "."]
    kept, dropped = corpus.decontaminate(clean[:2] + dirty + clean[2:], banned)
    assert kept == clean and dropped == len(dirty)


def test_cut_passage_keeps_whole_sentences_within_the_limit(corpus):
    first, second, third = "A" + "a" * 149 + ".", "B" + "b" * 199 + ".", "C" + "c" * 99 + "."
    assert corpus.cut_passage(f"{first} {second} {third}") == f"{first} {second}"  # 352 chars; + third > 400
    assert corpus.cut_passage(f"{first} {third}") == f"{first} {third}"
    assert corpus.cut_passage("D" + "d" * 400 + ". " + first) is None  # first sentence over 400: skipped


def _synthetic_sources(eval_sentences, n=60):
    """Two sources of made-up sentences (distinct, letters only) with real evaluation sentences mixed in, and
    the evaluation sentences mixed into each: {source: passages}, {source: evaluation sentences in it}."""
    rng = random.Random(0)
    words = "river stone market lantern copper garden winter engine harbour violin meadow signal".split()
    made = sorted({" ".join(rng.choice(words) for _ in range(7)) for _ in range(12 * n)})
    made = [s[0].upper() + s[1:] + "." for s in made]
    in_prose = eval_sentences["stsb"] + eval_sentences["sick"] + [eval_sentences["cranfield_doc"]]
    prose = [" ".join(made[i:i + 5]) for i in range(0, 5 * n, 5)]  # 5 sentences: over 200 characters
    prose += [f"{made[5 * n + k]} {s} {made[6 * n + k]}" for k, s in enumerate(in_prose)]
    onwn = eval_sentences["onwn"]
    glosses = made[7 * n:8 * n] + [d.rstrip(".") + f'; "{made[8 * n + k]}"' for k, d in enumerate(onwn)]
    glosses += onwn + [eval_sentences["cranfield_query"]]
    glosses += made[:10]  # also sentences of the other source: distill.txt must still hold each line once
    in_glosses = onwn + [eval_sentences["cranfield_query"]]
    return {"prose": prose, "glosses": glosses}, {"prose": in_prose, "glosses": in_glosses}


def test_corpus_outputs_hold_no_evaluation_sentence_and_distill_no_line_twice(corpus, banned, eval_sentences,
                                                                              tmp_path):
    passages, injected = _synthetic_sources(eval_sentences)
    sizes = dict(simcse_sentences=100, mntp_passages=40, distill_sentences=400, distill_passages=100)
    counts = corpus.write_corpus(passages, tmp_path / "a", banned, seed=3, **sizes)
    names = ("mntp.txt", "simcse.txt", "distill.txt")
    outputs = {name: (tmp_path / "a" / name).read_text(encoding="utf-8") for name in names}
    for name, text in outputs.items():
        lines = text.splitlines()
        assert lines, name
        assert [line for line in lines if _contaminated(corpus, banned, line)] == [], name
        for sentence in injected["prose"] + injected["glosses"]:
            assert sentence.rstrip(".") not in text, (name, sentence)
    distill = outputs["distill.txt"].splitlines()
    assert len(distill) == len(set(distill))
    assert all(len(line) <= corpus.PASSAGE_CHARS for line in distill)
    assert json.loads((tmp_path / "a" / "sources.json").read_text()) == counts
    # Dropped before sampling: one line per evaluation sentence (the gloss's definition and the bare one for
    # OnWN), and every output still has the size asked for.
    assert counts["prose"]["dropped_passages"] == len(injected["prose"])
    assert counts["glosses"]["dropped_passages"] == len(injected["glosses"]) + len(eval_sentences["onwn"])
    for name, c in counts.items():
        assert c["mntp_passages"] == 20 and c["simcse_sentences"] == 50, name
        assert c["distill_passages"] == 50 and c["distill_sentences"] > 0, name
    assert sum(c["distill_passages"] + c["distill_sentences"] for c in counts.values()) == len(distill)
    # The same seed writes the same files.
    corpus.write_corpus(passages, tmp_path / "b", banned, seed=3, **sizes)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_prepare_corpus_refuses_to_run_without_the_evaluation_data(corpus, tmp_path, monkeypatch, capsys):
    argv = ["prepare_corpus.py", str(tmp_path / "work"), "--data", str(tmp_path / "none")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        corpus.main()
    assert exit_info.value.code == 2
    assert "--data" in capsys.readouterr().err and not (tmp_path / "work").exists()
