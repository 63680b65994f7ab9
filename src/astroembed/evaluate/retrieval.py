"""Cross-modal retrieval of the true partner (AstroCLIP's image <-> spectrum search), against chance.

Ties count against the query: a partner that is only as similar as another candidate is not found
first. Counting ties in its favour would let collapsed embeddings (every vector the same) score a
perfect top-1; counted against it, they score zero, at or below chance.
"""

from __future__ import annotations

import math

import numpy as np

from .vectors import unit_rows

TIE_TOLERANCE = 1e-12  # cosine similarities closer than this are equal (float64 rounding: ~1e-16 x dim)


def partner_ranks(query_vectors: np.ndarray, target_vectors: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of target i among all targets for query i, by cosine similarity.

    The rank is the number of other targets at least as similar to query i as its true partner (to within
    ``TIE_TOLERANCE``), so a tie costs the partner a place.

    Raises
    ------
    ValueError
        If the two arrays are not 2-D with the same number of rows and columns, or a vector is zero or
        not finite (its cosine similarity is undefined).
    """
    q, t = np.asarray(query_vectors, np.float64), np.asarray(target_vectors, np.float64)
    if q.ndim != 2 or q.shape != t.shape:
        raise ValueError(f"query and target vectors must be 2-D arrays of one shape (same galaxies, same order), "
                         f"got {q.shape} and {t.shape}")
    for name, v in (("query", q), ("target", t)):
        norm = np.linalg.norm(v, axis=1)
        bad = np.flatnonzero(~np.isfinite(norm) | (norm == 0))
        if bad.size:
            raise ValueError(f"{name} row {bad[0]} ({bad.size} in all) is zero or not finite: its cosine "
                             f"similarity is undefined")
    similarity = unit_rows(q) @ unit_rows(t).T
    true = np.diag(similarity)
    # ">=" counts ties against the query; the partner itself (always >= itself) is taken off. Similarities
    # within TIE_TOLERANCE of the partner's are ties: identical vectors can differ in the last bits of
    # their dot products (BLAS blocking), which must not decide a rank.
    return (similarity >= true[:, None] - TIE_TOLERANCE).sum(axis=1) - 1


def retrieval_report(query_vectors: np.ndarray, target_vectors: np.ndarray) -> dict[str, float]:
    """Top-1 and top-1% recall of the true partner (row i of each is the same galaxy), and chance.

    ``top1pct`` counts a partner found within the first ``ceil(n / 100)`` places; the chance values are
    what a random ordering gives, ``1 / n`` and ``ceil(n / 100) / n``.
    """
    if len(query_vectors) != len(target_vectors):
        raise ValueError("query and target rows must pair up (same galaxies, same order)")
    n = len(query_vectors)
    ranks = partner_ranks(query_vectors, target_vectors)
    top_pct = max(1, math.ceil(0.01 * n))
    return {"n": n, "top1": float(np.mean(ranks == 0)), "top1_chance": 1.0 / n,
            "top1pct": float(np.mean(ranks < top_pct)), "top1pct_chance": top_pct / n,
            "median_rank": float(np.median(ranks))}
