"""Scores computed as MTEB computes them: STS Spearman of cosine similarities, retrieval nDCG@k / recall@k.

Retrieval follows trec_eval (which MTEB calls through pytrec_eval): the gain of a document is its graded
relevance value itself (linear, not 2**rel - 1), discounts are log2(rank + 1), the ideal ranking is built
from all judged documents of the query, and documents with gain <= 0 are not relevant.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def cosine_similarity_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of row i of `a` with row i of `b`, shape (n,).

    Example:
        >>> cosine_similarity_pairs(np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])).round(4)
        array([0.7071])
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired embeddings must have the same shape, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    # A zero vector has no direction: score it 0 rather than NaN so the ranking stays defined.
    return np.divide((a * b).sum(axis=1), norms, out=np.zeros(len(a)), where=norms > 0)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (ties get their average rank), as scipy.stats.spearmanr.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 40, 30])
        0.8
    """
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"spearman needs two sequences of the same length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError("spearman needs at least 2 pairs")
    return float(spearmanr(x, y)[0])


def ndcg_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int = 10) -> float:
    """nDCG@k of one ranked list of document ids against graded gains {doc_id: gain}.

    DCG = sum over the top k of gain / log2(rank + 1) (rank from 1); unjudged documents have gain 0.
    Returns 0.0 when the query has no document with a positive gain (trec_eval does the same).

    Example:
        >>> ndcg_at_k(["a", "b"], {"a": 1, "b": 2}, k=2)  # ideal is b, a
        0.8597...
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    dcg = sum(max(gains.get(doc, 0.0), 0.0) / np.log2(rank + 2) for rank, doc in enumerate(ranking[:k]))
    ideal = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / np.log2(rank + 2) for rank, g in enumerate(ideal))
    return float(dcg / idcg) if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int = 100) -> float:
    """Share of the query's relevant documents (gain > 0) found in the top k; 0.0 if it has none.

    Example:
        >>> recall_at_k(["a", "x", "b"], {"a": 3, "b": 1, "c": 2}, k=2)
        0.3333...
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    relevant = {doc for doc, g in gains.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def top_k_by_cosine(queries: np.ndarray, docs: np.ndarray, k: int, chunk_size: int = 256) -> np.ndarray:
    """Indices of the k documents most cosine-similar to each query, best first, shape (n_queries, k).

    Works in query chunks so a large corpus never needs a full (n_queries, n_docs) matrix at once.
    """
    k = min(k, len(docs))
    q = _normalize(queries)
    d = _normalize(docs)
    out = np.empty((len(q), k), dtype=np.int64)
    for start in range(0, len(q), chunk_size):
        scores = q[start:start + chunk_size] @ d.T
        # argpartition is O(n); only the k survivors get sorted. Ties broken by doc index for determinism.
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(scores, part, axis=1)
        order = np.lexsort((part, -part_scores), axis=1)
        out[start:start + chunk_size] = np.take_along_axis(part, order, axis=1)
    return out


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
