"""The probes behave as scikit-learn estimators and compute what their docstrings say."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import r2_score

from astroembed.evaluate.probes import KNNProbe, LinearProbe, MLPProbe


def _cosine_knn_reference(train_x, train_y, test_x, k):
    """Standardise with the training statistics, L2-normalise, distance-weighted mean of the top k."""
    mean, std = train_x.mean(0), train_x.std(0)
    a = (train_x - mean) / std
    b = (test_x - mean) / std
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    dist = np.linalg.norm(b[:, None] - a[None], axis=2)
    nearest = np.argsort(dist, axis=1)[:, :k]
    w = 1 / np.take_along_axis(dist, nearest, 1)
    return (w * train_y[nearest]).sum(1) / w.sum(1)


def test_knn_probe_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 6)) + 0.5, rng.normal(size=200)
    probe = KNNProbe(k_grid=(5,)).fit(x[:150], y[:150])
    np.testing.assert_allclose(probe.predict(x[150:]), _cosine_knn_reference(x[:150], y[:150], x[150:], 5))
    assert probe.k_ == 5


def test_knn_probe_chooses_k_by_cross_validation_on_the_training_set():
    rng = np.random.default_rng(1)
    t = rng.uniform(0, np.pi, 600)
    x = np.c_[np.cos(t), np.sin(t), rng.normal(0, 0.01, 600)]
    noisy = t + rng.normal(0, 1.0, 600)  # label noise: averaging many neighbours wins
    clean = t  # noise-free smooth labels: the closest neighbours win
    k_noisy = KNNProbe(k_grid=(2, 64), metric="euclidean").fit(x, noisy)
    k_clean = KNNProbe(k_grid=(2, 64), metric="euclidean").fit(x, clean)
    assert k_noisy.k_ == 64 and k_clean.k_ == 2
    assert set(k_noisy.cv_scores_) == {2, 64} and k_noisy.cv_scores_[64] > k_noisy.cv_scores_[2]
    assert r2_score(clean, k_clean.predict(x)) > 0.99


def test_classification_probes_give_probabilities_in_class_order():
    rng = np.random.default_rng(2)
    y = np.repeat(np.array(["E", "S", "Irr"]), 60)
    centres = {"E": [3, 0, 0], "S": [0, 3, 0], "Irr": [0, 0, 3]}
    x = np.array([centres[c] for c in y]) + rng.normal(0, 0.5, (180, 3))
    for probe in (KNNProbe("classification"), LinearProbe("classification"), MLPProbe("classification")):
        probe.fit(x[::2], y[::2])
        assert list(probe.classes_) == ["E", "Irr", "S"]
        proba = probe.predict_proba(x[1::2])
        np.testing.assert_allclose(proba.sum(1), 1.0)
        assert np.mean(probe.classes_[proba.argmax(1)] == y[1::2]) > 0.95
        assert np.mean(probe.predict(x[1::2]) == y[1::2]) > 0.95


def test_linear_and_mlp_regression_and_few_shot_fits():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 4))
    linear_y = x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.01 * rng.normal(size=600)
    assert r2_score(linear_y[400:], LinearProbe().fit(x[:400], linear_y[:400]).predict(x[400:])) > 0.999
    curved = np.sin(2 * x[:, 0]) + x[:, 1] ** 2
    mlp = MLPProbe(max_iter=500).fit(x[:400], curved[:400])
    linear = LinearProbe().fit(x[:400], curved[:400])
    assert r2_score(curved[400:], mlp.predict(x[400:])) > 0.8 > 0.3 > r2_score(curved[400:], linear.predict(x[400:]))
    # few-shot: 6 labels (no early stopping, no CV folds) still fit and predict
    for probe in (KNNProbe(), LinearProbe(), MLPProbe(), LinearProbe("classification"),
                  KNNProbe("classification")):
        labels = curved[:6] if probe.task == "regression" else np.array([0, 1, 0, 1, 0, 1])
        assert probe.fit(x[:6], labels).predict(x[6:10]).shape == (4,)


def test_probes_are_scikit_learn_estimators_and_check_their_arguments():
    probe = KNNProbe(k_grid=(3, 7), metric="euclidean", seed=4)
    assert clone(probe).get_params() == probe.get_params()
    assert not hasattr(probe, "estimator_")  # nothing learned in __init__
    with pytest.raises(ValueError, match="task"):
        LinearProbe("ranking").fit(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="metric"):
        KNNProbe(metric="manhattan").fit(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="classification"):
        LinearProbe().fit(np.eye(3), np.arange(3.0)).predict_proba(np.eye(3))
