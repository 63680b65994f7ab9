"""Trust and anomalies: how far an object lies from the embeddings a model (or a probe) was fitted on.

The score is the mean distance to the k nearest reference embeddings, on inputs standardised with the
reference's statistics (cosine distance for embeddings; Euclidean for catalogue features such as
magnitudes, whose vectors all point the same way). It becomes a p-value by
conformal calibration: a seeded share of the reference objects is held out of the neighbour index,
and an object's p-value is the fraction of those held-out (in-distribution) objects that score at
least as high, (1 + #{s_cal >= s}) / (n_cal + 1). For objects drawn like the reference, P(p <= a) <= a,
so ``ood_pvalue < 0.01`` flags about 1 % of normal objects. IsolationForest is the baseline ranking.

Where the cutouts are at hand, the pixels give a second, independent test
(:mod:`astroembed.evaluate.pixel_quality`: cosmic rays, hot columns, trails, saturation, blank sky), calibrated
the same way into ``pixel_artefact_pvalue``. The two are combined by Bonferroni, ``anomaly_pvalue =
min(1, 2 min(ood_pvalue, pixel_artefact_pvalue))``, which stays valid (P(p <= a) <= a) whatever the dependence
between the tests. ``anomaly_rank`` then sorts by ``anomaly_pvalue`` and breaks its ties (conformal p-values
bottom out at 1 / (n_cal + 1)) by ``anomaly_score``, the larger of the two tests' robust z-scores against their
calibration objects. Without pixels ``anomaly_pvalue`` is ``ood_pvalue`` and ``anomaly_rank`` sorts by
``knn_distance`` (a catalogue ranked against itself has two calibrating halves, whose p-values are each valid
but order the catalogue more coarsely than the distance does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from .conformal import conformal_pvalue
from .vectors import unit_rows

__all__ = ["KNNOutlierScorer", "IsolationForestScorer", "combine_pvalues", "combined_rank", "rank_catalog",
           "write_anomalies"]


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
        return conformal_pvalue(self.calibration_scores_, scores)

    def z_of_scores(self, scores) -> np.ndarray:
        """Robust z-score of scores against the calibration objects' (median, 1.4826 x MAD): a scale on which
        objects beyond every calibration object still differ, to order ties of the p-value."""
        cal = self.calibration_scores_
        centre = np.median(cal)
        scale = 1.4826 * np.median(np.abs(cal - centre))
        return (np.asarray(scores, np.float64) - centre) / (scale if scale > 0 else max(np.ptp(cal), 1e-12))


def combine_pvalues(*pvalues) -> np.ndarray:
    """Bonferroni combination of m tests' p-values, min(1, m x min p): valid for any dependence between them."""
    stacked = np.stack([np.asarray(p, np.float64) for p in pvalues])
    return np.minimum(1.0, len(stacked) * stacked.min(axis=0))


def combined_rank(pvalue, score) -> np.ndarray:
    """1 = most anomalous: smallest p-value first, ties broken by the larger score."""
    rank = np.empty(len(pvalue), np.int64)
    rank[np.lexsort((-np.asarray(score), np.asarray(pvalue)))] = np.arange(1, len(pvalue) + 1)
    return rank


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


def _knn_columns(scorer: KNNOutlierScorer, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    score = scorer.score(X)
    return score, scorer.p_value_of_scores(score), scorer.z_of_scores(score)


def _pixel_columns(scorer, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    score = scorer.score(features)
    return score, scorer.p_value_of_scores(score), score  # the pixel score is already a robust z-score


def _columns(fit, X: np.ndarray, reference, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, p-value, z) of every row of ``X``: scored against ``reference`` by the scorer ``fit`` returns,
    or, without a reference, against itself in two seeded halves, each scored against (and calibrated on)
    the other, so no object is its own neighbour or calibrator."""
    if reference is not None:
        return fit(reference)(X)
    half = np.random.default_rng(seed).permutation(len(X)) < len(X) // 2
    out = np.empty((3, len(X)))
    for part in (half, ~half):
        out[:, part] = fit(X[~part])(X[part])
    return out[0], out[1], out[2]


def rank_catalog(X, reference=None, k: int = 10, seed: int = 0, metric: str = "cosine", pixels=None,
                 reference_pixels=None) -> dict[str, np.ndarray]:
    """Anomaly columns for each row of ``X``: ``knn_distance``, ``ood_pvalue``, ``isolation_forest_score``,
    ``anomaly_pvalue``, ``anomaly_score`` and ``anomaly_rank`` (1 = most anomalous; see the module docstring).

    With ``reference`` embeddings (e.g. the training set of a model) both scorers are fitted on them;
    without, the catalogue is ranked against itself (k-NN: cross-fitted halves; IsolationForest: the whole
    catalogue, as it is designed to be used). ``pixels``, the :func:`~.pixel_quality.pixel_features` of the
    same rows (and ``reference_pixels`` those of the reference, required with a reference), add
    ``pixel_artefact_score`` and ``pixel_artefact_pvalue`` and enter the combined p-value.
    """
    from .pixel_quality import PixelArtefactScorer

    X = np.asarray(X, np.float64)
    if len(X) < 4:
        raise ValueError(f"need at least 4 embeddings to rank, got {len(X)}")
    if pixels is not None and len(pixels) != len(X):
        raise ValueError(f"pixel features have {len(pixels)} rows, the embeddings {len(X)}")
    if pixels is not None and reference is not None and reference_pixels is None:
        raise ValueError("with a reference, pixel features need the reference's pixel features too")

    def knn(R):
        scorer = KNNOutlierScorer(k=k, metric=metric, seed=seed).fit(R)
        return lambda Q: _knn_columns(scorer, Q)

    def pix(R):
        scorer = PixelArtefactScorer(seed=seed).fit(R)
        return lambda Q: _pixel_columns(scorer, Q)

    score, p, z = _columns(knn, X, reference, seed)
    forest = IsolationForestScorer(seed=seed).fit(X if reference is None else reference)
    out = {"knn_distance": score, "ood_pvalue": p, "isolation_forest_score": forest.score(X)}
    if pixels is None:  # one test: its p-value, and the ranking by distance as before the pixel test existed
        out.update(anomaly_pvalue=p, anomaly_score=z, anomaly_rank=combined_rank(np.zeros(len(X)), score))
        return out
    out["pixel_artefact_score"], out["pixel_artefact_pvalue"], pixel_z = _columns(
        pix, np.asarray(pixels, np.float64), reference_pixels, seed)
    out.update(anomaly_pvalue=combine_pvalues(p, out["pixel_artefact_pvalue"]), anomaly_score=np.maximum(z, pixel_z))
    out["anomaly_rank"] = combined_rank(out["anomaly_pvalue"], out["anomaly_score"])
    return out


def write_anomalies(embeddings, out, reference=None, k: int = 10, seed: int = 0, data=None) -> Path:
    """Rank an embedding catalogue and write object_id, ra, dec and the anomaly columns as Parquet,
    sorted by rank (most anomalous first). ``data``, an MMU survey holding the objects' cutouts (and the
    reference's), adds the pixel-quality test and the combined p-value."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..embed.store import read_embeddings

    ids, ra, dec, X = read_embeddings(embeddings)
    ref_ids, ref = (read_embeddings(reference)[0::3] if reference is not None else (None, None))
    pixels = reference_pixels = None
    if data is not None:
        from ..data.mmu import MMUSurvey
        from .raw_inputs import survey_pixel_features

        survey = MMUSurvey(data)
        pixels = survey_pixel_features(survey, survey.indices_of(ids))
        reference_pixels = None if ref_ids is None else survey_pixel_features(survey, survey.indices_of(ref_ids))
    columns = rank_catalog(X, ref, k=k, seed=seed, pixels=pixels, reference_pixels=reference_pixels)
    table = pa.table({"object_id": ids, "ra": ra, "dec": dec, **columns}).sort_by("anomaly_rank")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return out
