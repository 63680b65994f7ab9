"""Cross-modal retrieval of the true partner (AstroCLIP's image <-> spectrum search), against chance."""

from __future__ import annotations

import math

import numpy as np


def partner_ranks(query_vectors: np.ndarray, target_vectors: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of target i among all targets for query i, by cosine similarity."""
    q = query_vectors / np.linalg.norm(query_vectors, axis=1, keepdims=True)
    t = target_vectors / np.linalg.norm(target_vectors, axis=1, keepdims=True)
    similarity = q @ t.T
    true = np.diag(similarity)
    return (similarity > true[:, None]).sum(axis=1)


def retrieval_report(query_vectors: np.ndarray, target_vectors: np.ndarray) -> dict[str, float]:
    """Top-1 and top-1% recall of the true partner (row i of each is the same galaxy), and chance."""
    if query_vectors.shape[0] != target_vectors.shape[0]:
        raise ValueError("query and target rows must pair up (same galaxies, same order)")
    n = len(query_vectors)
    ranks = partner_ranks(query_vectors, target_vectors)
    top_pct = max(1, math.ceil(0.01 * n))
    return {"n": n, "top1": float(np.mean(ranks == 0)), "top1_chance": 1.0 / n,
            "top1pct": float(np.mean(ranks < top_pct)), "top1pct_chance": top_pct / n,
            "median_rank": float(np.median(ranks))}
