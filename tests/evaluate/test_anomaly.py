"""Out-of-distribution scores: the definition, the calibration of the p-values, and the ranking."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from astroembed.evaluate.anomaly import KNNOutlierScorer, rank_catalog


def _normal_and_strange(seed=0, n=2000, n_strange=20, dim=16):
    rng = np.random.default_rng(seed)
    centre = np.r_[5.0, np.zeros(dim - 1)]  # a cone of directions, as embeddings on a sphere are
    normal = centre + rng.normal(size=(n, dim))
    # strange objects point in scattered directions (a tight clump of them would be its own population)
    directions = rng.normal(size=(n_strange, dim)) * np.r_[0.0, np.ones(dim - 1)]
    strange = 5 * directions / np.linalg.norm(directions, axis=1, keepdims=True) + rng.normal(size=(n_strange, dim))
    return normal, strange


def test_score_is_the_mean_cosine_distance_to_the_k_nearest_references():
    rng = np.random.default_rng(1)
    ref, query = rng.normal(size=(50, 4)), rng.normal(size=(5, 4))
    scorer = KNNOutlierScorer(k=3, calibration_fraction=0.2, standardise=False, seed=0).fit(ref)
    kept = scorer.neighbours_._fit_X  # the 40 references not held out for calibration
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    cos_distance = 1 - unit(query) @ kept.T
    np.testing.assert_allclose(scorer.score(query), np.sort(cos_distance, axis=1)[:, :3].mean(1), atol=1e-12)
    assert len(scorer.calibration_scores_) == 10
    # standardised: the same on inputs standardised with the whole reference's statistics
    mean, std = ref.mean(0), ref.std(0)
    standardised = KNNOutlierScorer(k=3, standardise=True, seed=0).fit(ref)
    np.testing.assert_allclose(standardised.score(query),
                               KNNOutlierScorer(k=3, standardise=False, seed=0).fit((ref - mean) / std).score(
                                   (query - mean) / std), atol=1e-12)
    euclidean = KNNOutlierScorer(k=3, metric="euclidean", standardise=False, seed=0).fit(ref)
    assert KNNOutlierScorer(metric="euclidean").fit(ref).scaler_ is not None  # the default for features
    assert KNNOutlierScorer().fit(ref).scaler_ is None  # embeddings: cosine as trained
    distance = np.linalg.norm(query[:, None] - euclidean.neighbours_._fit_X[None], axis=2)
    np.testing.assert_allclose(euclidean.score(query), np.sort(distance, axis=1)[:, :3].mean(1), atol=1e-12)


def test_p_values_are_calibrated_on_normal_objects_and_small_on_strange_ones():
    normal, strange = _normal_and_strange()
    scorer = KNNOutlierScorer(k=10, calibration_fraction=0.25).fit(normal[:1000])
    p_normal = scorer.p_value(normal[1000:])
    for level in (0.05, 0.1, 0.3):  # P(p <= a) ~ a, within 3 binomial standard deviations
        assert abs(np.mean(p_normal <= level) - level) < 3 * np.sqrt(level * (1 - level) / 1000)
    p_strange = scorer.p_value(strange)
    assert np.all(p_strange == 1 / 251)  # farther than every calibration object


def test_rank_catalog_puts_injected_objects_first_with_both_scorers():
    normal, strange = _normal_and_strange(seed=2)
    catalogue = np.r_[normal, strange]
    is_strange = np.r_[np.zeros(len(normal), bool), np.ones(len(strange), bool)]
    for reference in (None, normal[:500]):
        columns = rank_catalog(catalogue, reference)
        assert set(columns["anomaly_rank"][is_strange]) == set(range(1, 21))
        assert roc_auc_score(is_strange, columns["isolation_forest_score"]) > 0.9  # the weaker baseline
        assert columns["ood_pvalue"][is_strange].max() < 0.01
    with pytest.raises(ValueError, match="at least 4"):
        rank_catalog(catalogue[:3])
