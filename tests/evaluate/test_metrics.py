"""Every metric of `astroembed evaluate` on a small example computed by hand."""

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from astroembed.evaluate.metrics import (bias, bootstrap_interval, classification_metrics, ndcg_at_k, nmad,
                                         outlier_fraction, photo_z_metrics, recall_at_k, regression_metrics,
                                         sigma68)


def test_photo_z_metrics_by_hand():
    z_true = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    z_pred = np.array([0.1, -0.1, 0.0, 0.2, 1.2])  # dz = 0.1, -0.1, 0, 0.2, 0.1
    assert bias(z_pred, z_true) == pytest.approx(0.1)
    assert nmad(z_pred, z_true) == pytest.approx(1.4826 * 0.1)  # |dz - 0.1| = 0, .2, .1, .1, 0
    assert outlier_fraction(z_pred, z_true) == pytest.approx(0.2)
    assert outlier_fraction([0.15], [0.0]) == 1.0  # the threshold itself is an outlier (|dz| >= 0.15)
    metrics = photo_z_metrics(z_true, z_pred)
    assert set(metrics) == {"bias", "nmad", "sigma68", "outlier_fraction", "r2", "mae"}
    assert metrics["mae"] == pytest.approx((0.1 + 0.1 + 0 + 0.2 + 0.2) / 5)  # on z, not dz


def test_sigma68_is_half_the_central_68_percent_range():
    dz = np.linspace(-1, 1, 101)  # evenly spaced: percentiles are exact linear interpolations
    assert sigma68(dz, np.zeros_like(dz)) == pytest.approx(2 * 0.84135 - 1)
    gaussian = np.random.default_rng(0).normal(0, 0.03, 200_000)
    assert sigma68(gaussian, np.zeros_like(gaussian)) == pytest.approx(0.03, rel=0.01)


def test_regression_metrics_by_hand():
    metrics = regression_metrics([1, 2, 3, 4], [1, 2, 3, 5])
    assert metrics["mae"] == pytest.approx(0.25)
    assert metrics["r2"] == pytest.approx(1 - 1 / 5)  # SS_res = 1, SS_tot = 5


def test_classification_metrics_by_hand():
    y_true, y_pred = [0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2]
    metrics = classification_metrics(y_true, y_pred)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)  # per-class recalls
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)  # per-class F1s happen to match
    # binary AUC: 3 of the 4 (positive, negative) pairs are ordered correctly
    proba = np.array([0.1, 0.4, 0.35, 0.8])
    binary = classification_metrics([0, 0, 1, 1], [0, 1, 0, 1], np.c_[1 - proba, proba], classes=[0, 1])
    assert binary["roc_auc"] == pytest.approx(0.75)
    single = classification_metrics([1, 1], [1, 1], np.array([[0.2, 0.8], [0.3, 0.7]]), classes=[0, 1])
    assert np.isnan(single["roc_auc"])


def test_recall_and_ndcg_by_hand_and_against_scikit_learn():
    relevance = np.array([[0, 1, 0], [0, 0, 0], [1, 0, 1]], bool)
    assert recall_at_k(relevance, 1) == pytest.approx(1 / 3)
    assert recall_at_k(relevance, 2) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="fewer than k"):
        recall_at_k(relevance, 4)
    # query 0: one relevant item in the database, found at rank 2; query 2: two, found at ranks 1 and 3;
    # query 1 has none in the database and is left out.
    expected = [1 / np.log2(3), (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))]
    assert ndcg_at_k(relevance, np.array([1, 0, 2]), k=3) == pytest.approx(np.mean(expected))
    # the same as scikit-learn's when the database is exactly the returned items
    rng = np.random.default_rng(0)
    rel = rng.random((20, 10)) < 0.3
    scores = np.tile(np.arange(10, 0, -1), (20, 1))
    keep = rel.any(1)
    assert ndcg_at_k(rel, rel.sum(1), k=10) == pytest.approx(ndcg_score(rel[keep], scores[keep], k=10))


def test_bootstrap_interval_matches_the_standard_error_of_a_mean():
    x = np.random.default_rng(1).normal(3.0, 2.0, 400)
    lo, hi = bootstrap_interval(np.mean, x, n_resamples=2000, seed=0)
    half_width = 1.96 * 2.0 / np.sqrt(400)
    assert lo < np.mean(x) < hi
    assert (hi - lo) / 2 == pytest.approx(half_width, rel=0.15)
    assert bootstrap_interval(np.mean, np.full(50, 7.0)) == (7.0, 7.0)
    # paired resampling of two arrays; a metric undefined on most draws gives no interval
    y = np.zeros(50)  # a single class: the AUC is undefined on every draw
    assert np.isnan(bootstrap_interval(lambda a, b: classification_metrics(a, b, np.c_[1 - b, b], [0, 1])["roc_auc"],
                                       y, y, n_resamples=100)[0])
    with pytest.raises(ValueError, match="same length"):
        bootstrap_interval(np.mean, x, x[:3])
