"""Science metrics for downstream predictions from embeddings, and bootstrap intervals for any of them.

Photo-z conventions follow Hayat et al. (2021) and astroPT: dz = (z_p - z_s) / (1 + z_s); bias is the
median of dz (robust to the outliers counted separately); NMAD = 1.4826 x median |dz - median(dz)|;
sigma68 = half the 16-84 percentile range of dz; an outlier has |dz| >= 0.15.
Retrieval follows the metric-learning convention: recall@k is the fraction of queries with at least one
relevant item among their top k, and nDCG@k uses binary relevance with the ideal ranking built from
the number of relevant items the database holds for each query.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score, mean_absolute_error, r2_score,
                             roc_auc_score)

__all__ = ["r2_score", "accuracy_score", "redshift_residuals", "sigma_mad", "nmad", "bias", "sigma68",
           "outlier_fraction", "median_abs_dz", "photo_z_metrics", "regression_metrics",
           "classification_metrics", "recall_at_k", "ndcg_at_k", "bootstrap_interval", "bootstrap_intervals"]

OUTLIER_THRESHOLD = 0.15  # |dz| / (1 + z) at or above which a photo-z counts as an outlier (Hayat et al.)


def redshift_residuals(z_pred, z_true) -> np.ndarray:
    """dz = (z_pred - z_true) / (1 + z_true)."""
    z_pred, z_true = np.asarray(z_pred, np.float64), np.asarray(z_true, np.float64)
    if z_pred.shape != z_true.shape:
        raise ValueError(f"z_pred shape {z_pred.shape} != z_true shape {z_true.shape}")
    return (z_pred - z_true) / (1.0 + z_true)


def sigma_mad(z_pred, z_true) -> float:
    """NMAD: 1.4826 x median absolute deviation of dz (a robust Gaussian-equivalent scatter)."""
    r = redshift_residuals(z_pred, z_true)
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


nmad = sigma_mad


def bias(z_pred, z_true) -> float:
    """Median of dz."""
    return float(np.median(redshift_residuals(z_pred, z_true)))


def sigma68(z_pred, z_true) -> float:
    """Half the width of the central 68 % (16th-84th percentile) range of dz."""
    lo, hi = np.percentile(redshift_residuals(z_pred, z_true), [15.865, 84.135])
    return float(0.5 * (hi - lo))


def outlier_fraction(z_pred, z_true, threshold: float = OUTLIER_THRESHOLD) -> float:
    """Fraction of objects with |dz| >= threshold."""
    return float(np.mean(np.abs(redshift_residuals(z_pred, z_true)) >= threshold))


def median_abs_dz(z_pred, z_true) -> float:
    """Median |dz|; for neighbour pairs, z_pred is the neighbour's redshift."""
    return float(np.median(np.abs(redshift_residuals(z_pred, z_true))))


def photo_z_metrics(z_true, z_pred) -> dict[str, float]:
    """Bias, NMAD, sigma68, outlier fraction, R^2 and MAE of photometric (or embedding) redshifts."""
    return {"bias": bias(z_pred, z_true), "nmad": nmad(z_pred, z_true), "sigma68": sigma68(z_pred, z_true),
            "outlier_fraction": outlier_fraction(z_pred, z_true), **regression_metrics(z_true, z_pred)}


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """R^2 and mean absolute error."""
    return {"r2": float(r2_score(y_true, y_pred)), "mae": float(mean_absolute_error(y_true, y_pred))}


def classification_metrics(y_true, y_pred, proba: np.ndarray | None = None,
                           classes: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1 and (given class probabilities) ROC-AUC.

    ``proba`` is (N, n_classes) in the order of ``classes``; ROC-AUC is the positive-class AUC for two
    classes and the macro one-vs-rest AUC for more. It is NaN when the truth holds a single class.
    """
    out = {"accuracy": float(accuracy_score(y_true, y_pred)),
           "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
           "macro_f1": float(f1_score(y_true, y_pred, average="macro"))}
    if proba is not None:
        out["roc_auc"] = _roc_auc(np.asarray(y_true), np.asarray(proba), classes)
    return out


def _roc_auc(y_true: np.ndarray, proba: np.ndarray, classes) -> float:
    classes = np.unique(y_true) if classes is None else np.asarray(classes)
    present = np.isin(classes, y_true)
    if present.sum() < 2:
        return float("nan")
    if len(classes) == 2:
        return float(roc_auc_score(y_true == classes[1], proba[:, 1]))
    # Classes absent from this sample (a bootstrap draw, a small test set) have no defined AUC.
    sub = proba[:, present] / np.clip(proba[:, present].sum(1, keepdims=True), 1e-12, None)
    return float(roc_auc_score(y_true, sub, multi_class="ovr", average="macro", labels=classes[present]))


def recall_at_k(relevance: np.ndarray, k: int) -> float:
    """Fraction of queries with a relevant item among their first k results.

    ``relevance`` is (n_queries, >= k) booleans: whether result j of query i is relevant.
    """
    relevance = np.asarray(relevance, bool)
    if relevance.shape[1] < k:
        raise ValueError(f"relevance has {relevance.shape[1]} results per query, fewer than k={k}")
    return float(np.mean(relevance[:, :k].any(axis=1)))


def ndcg_at_k(relevance: np.ndarray, n_relevant: np.ndarray, k: int = 10) -> float:
    """Mean nDCG@k with binary relevance: DCG = sum_j rel_j / log2(j + 1) over ranks j = 1..k, divided
    by the DCG of an ideal ranking (min(k, n_relevant) relevant items first). Queries with no relevant
    item in the database are left out (their nDCG is undefined)."""
    relevance = np.asarray(relevance, float)[:, :k]
    if relevance.shape[1] < k:
        raise ValueError(f"relevance has {relevance.shape[1]} results per query, fewer than k={k}")
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = relevance @ discount
    ideal_counts = np.minimum(np.asarray(n_relevant), k)
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[ideal_counts]
    keep = ideal > 0
    return float(np.mean(dcg[keep] / ideal[keep])) if keep.any() else float("nan")


def bootstrap_intervals(metrics: Callable[..., dict[str, float]], *arrays, n_resamples: int = 1000,
                        confidence: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each value of the dict ``metrics(*arrays)``, resampling objects (rows)
    with replacement; all arrays share the indices of each draw (paired).

    Draws where a value is undefined (NaN, or the metric raises ValueError, e.g. a single class drawn)
    are dropped for that value; its interval is (nan, nan) if fewer than half the draws remain.
    """
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays must have the same length, got {[len(a) for a in arrays]}")
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        try:
            values = metrics(*(a[idx] for a in arrays))
        except ValueError:
            continue
        for key, value in values.items():
            draws.setdefault(key, []).append(float(value))
    alpha = 100 * (1 - confidence) / 2
    out = {}
    for key, values in draws.items():
        values = np.asarray(values)
        values = values[np.isfinite(values)]
        out[key] = ((float("nan"), float("nan")) if len(values) < n_resamples / 2
                    else tuple(float(v) for v in np.percentile(values, [alpha, 100 - alpha])))
    return out


def bootstrap_interval(metric: Callable[..., float], *arrays, n_resamples: int = 1000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the number ``metric(*arrays)`` (see :func:`bootstrap_intervals`)."""
    out = bootstrap_intervals(lambda *a: {"value": metric(*a)}, *arrays, n_resamples=n_resamples,
                              confidence=confidence, seed=seed)
    return out.get("value", (float("nan"), float("nan")))
