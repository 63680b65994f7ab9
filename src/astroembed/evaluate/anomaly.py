"""Trust and anomalies: how far an object lies from the embeddings a model (or a probe) was fitted on.

The score is the mean distance to the k nearest reference embeddings, on inputs standardised with the
reference's statistics (cosine distance for embeddings; Euclidean for catalogue features such as
magnitudes, whose vectors all point the same way). It becomes a p-value by
conformal calibration: a seeded share of the reference objects is held out of the neighbour index,
and an object's p-value is the fraction of those held-out (in-distribution) objects that score at
least as high, (1 + #{s_cal >= s}) / (n_cal + 1). For objects drawn like the reference, P(p <= a) <= a,
so ``ood_pvalue < 0.01`` flags about 1 % of normal objects. IsolationForest is the baseline ranking.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from .vectors import unit_rows

__all__ = ["KNNOutlierScorer", "IsolationForestScorer", "rank_catalog", "write_anomalies"]


class KNNOutlierScorer(BaseEstimator):
    """Out-of-distribution score: mean cosine distance to the k nearest reference embeddings, with a
    calibrated p-value.

    Attributes
    ----------
    scaler_ : StandardScaler or None
        Standardisation learned from the reference (None when not standardising; ``standardise=None``
        standardises for the Euclidean metric only).
    neighbours_ : NearestNeighbors
        Index of the reference embeddings not used for calibration.
    calibration_scores_ : ndarray
        Scores of the held-out reference embeddings, sorted.
    """

    def __init__(self, k: int = 10, calibration_fraction: float = 0.2, metric: str = "cosine",
                 standardise: bool | None = None, seed: int = 0):
        self.k, self.calibration_fraction, self.seed = k, calibration_fraction, seed
        self.metric, self.standardise = metric, standardise

    def _prepare(self, X) -> np.ndarray:
        X = np.asarray(X, np.float64)
        X = self.scaler_.transform(X) if self.scaler_ is not None else X
        return unit_rows(X) if self.metric == "cosine" else X

    def fit(self, X):
        if self.metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean', got {self.metric!r}")
        X = np.asarray(X, np.float64)
        # Default: cosine on the embeddings as trained (centring them would erase how far an object lies
        # from the bulk, leaving only its direction); Euclidean on standardised catalogue features.
        standardise = self.metric == "euclidean" if self.standardise is None else self.standardise
        self.scaler_ = StandardScaler().fit(X) if standardise else None
        X = self._prepare(X)
        if not 0 < self.calibration_fraction < 1:
            raise ValueError(f"calibration_fraction must be in (0, 1), got {self.calibration_fraction}")
        order = np.random.default_rng(self.seed).permutation(len(X))
        n_cal = max(1, int(round(self.calibration_fraction * len(X))))
        if len(X) - n_cal < 1:
            raise ValueError(f"need at least 2 reference embeddings, got {len(X)}")
        self.neighbours_ = NearestNeighbors(n_neighbors=min(self.k, len(X) - n_cal)).fit(X[order[n_cal:]])
        self.calibration_scores_ = np.sort(self._score_prepared(X[order[:n_cal]]))
        return self

    def _score_prepared(self, X) -> np.ndarray:
        distance, _ = self.neighbours_.kneighbors(X)
        if self.metric == "cosine":
            return (distance ** 2 / 2).mean(1)  # |a - b|^2 / 2 = 1 - cos for unit vectors
        return distance.mean(1)

    def score(self, X) -> np.ndarray:
        """Mean distance (cosine: 1 - cos) to the k nearest reference embeddings; larger = stranger."""
        return self._score_prepared(self._prepare(X))

    def p_value(self, X) -> np.ndarray:
        """Conformal p-value: small means few in-distribution objects are this far from the reference."""
        return self.p_value_of_scores(self.score(X))

    def p_value_of_scores(self, scores) -> np.ndarray:
        """:meth:`p_value` of scores already computed with :meth:`score` (the neighbour search is the cost)."""
        n_at_least = len(self.calibration_scores_) - np.searchsorted(self.calibration_scores_, scores, "left")
        return (1 + n_at_least) / (len(self.calibration_scores_) + 1)


class IsolationForestScorer(BaseEstimator):
    """Baseline: scikit-learn's IsolationForest on standardised embeddings; larger score = stranger.

    Attributes
    ----------
    forest_ : IsolationForest
    scaler_ : StandardScaler
    """

    def __init__(self, n_estimators: int = 200, seed: int = 0):
        self.n_estimators, self.seed = n_estimators, seed

    def fit(self, X):
        X = np.asarray(X, np.float64)
        self.scaler_ = StandardScaler().fit(X)
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(
            self.scaler_.transform(X))
        return self

    def score(self, X) -> np.ndarray:
        return -self.forest_.score_samples(self.scaler_.transform(np.asarray(X, np.float64)))


def _cross_fit_scores(X: np.ndarray, k: int, seed: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores and p-values of every object of a catalogue ranked against itself: two seeded halves, each
    scored against (and calibrated on) the other, so no object is its own neighbour or calibrator."""
    half = np.random.default_rng(seed).permutation(len(X)) < len(X) // 2
    score, p = np.empty(len(X)), np.empty(len(X))
    for part in (half, ~half):
        scorer = KNNOutlierScorer(k=k, metric=metric, seed=seed).fit(X[~part])
        score[part] = scorer.score(X[part])
        p[part] = scorer.p_value_of_scores(score[part])
    return score, p


def rank_catalog(X, reference=None, k: int = 10, seed: int = 0, metric: str = "cosine") -> dict[str, np.ndarray]:
    """Anomaly columns for each row of ``X``: ``knn_distance``, ``ood_pvalue``, ``isolation_forest_score``
    and ``anomaly_rank`` (1 = most anomalous by k-NN distance).

    With ``reference`` embeddings (e.g. the training set of a model) both scorers are fitted on them;
    without, the catalogue is ranked against itself (k-NN: cross-fitted halves; IsolationForest: the whole
    catalogue, as it is designed to be used).
    """
    X = np.asarray(X, np.float64)
    if len(X) < 4:
        raise ValueError(f"need at least 4 embeddings to rank, got {len(X)}")
    if reference is None:
        score, p = _cross_fit_scores(X, k, seed, metric)
        forest = IsolationForestScorer(seed=seed).fit(X)
    else:
        scorer = KNNOutlierScorer(k=k, metric=metric, seed=seed).fit(reference)
        score = scorer.score(X)
        p = scorer.p_value_of_scores(score)
        forest = IsolationForestScorer(seed=seed).fit(reference)
    rank = np.empty(len(X), np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(1, len(X) + 1)
    return {"knn_distance": score, "ood_pvalue": p, "isolation_forest_score": forest.score(X), "anomaly_rank": rank}


def write_anomalies(embeddings, out, reference=None, k: int = 10, seed: int = 0) -> Path:
    """Rank an embedding catalogue and write object_id, ra, dec and the anomaly columns as Parquet,
    sorted by rank (most anomalous first)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..embed.store import read_embeddings

    ids, ra, dec, X = read_embeddings(embeddings)
    ref = read_embeddings(reference)[3] if reference is not None else None
    columns = rank_catalog(X, ref, k=k, seed=seed)
    table = pa.table({"object_id": ids, "ra": ra, "dec": dec, **columns}).sort_by("anomaly_rank")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return out
