"""Zero-shot k-NN redshift: a hand-worked example, and informative vs shuffled embeddings."""

import numpy as np
import pytest

from astroembed.evaluate.redshift import knn_redshift_report


def test_knn_report_on_a_hand_worked_example():
    # Training embeddings on the unit circle at 0, 0.2, 0.4, 0.6 rad with z = 0.1 .. 0.4; test galaxies
    # exactly half-way between two of them, so their 2 nearest neighbours are equally distant and the
    # distance-weighted k-NN predicts the plain mean: 0.15 and 0.35.
    train_angle = np.array([0.0, 0.2, 0.4, 0.6])
    test_angle = np.array([0.1, 0.5])
    train_x = np.c_[np.cos(train_angle), np.sin(train_angle)]
    test_x = 3.0 * np.c_[np.cos(test_angle), np.sin(test_angle)]  # lengths do not matter (cosine)
    z_test = np.array([0.15, 0.45])
    report = knn_redshift_report(train_x, [0.1, 0.2, 0.3, 0.4], test_x, z_test, k=2)
    # residuals (pred - true)/(1 + true) = 0 and -0.1/1.45; R^2 = 1 - (0 + 0.1^2) / (0.15^2 + 0.15^2)
    r = np.array([0.0, -0.1 / 1.45])
    assert report["r2"] == pytest.approx(1 - 0.01 / 0.045)
    assert report["median_abs_dz"] == pytest.approx(0.05 / 1.45)
    assert report["sigma_mad"] == pytest.approx(1.4826 * abs(r[1] - r.mean()))  # both |r - median| equal
    assert report["outlier_fraction"] == 0.0
    assert (report["k"], report["n_train"], report["n_test"]) == (2, 4, 2)


def test_knn_redshift_recovers_a_smooth_function_of_the_embedding():
    rng = np.random.default_rng(0)
    z = rng.uniform(0.0, 0.5, 2000)
    angle = z * np.pi  # embeddings on a circle arc: cosine neighbours have close redshifts
    x = np.c_[np.cos(angle), np.sin(angle)] + rng.normal(0, 0.01, (2000, 2))
    good = knn_redshift_report(x[:1500], z[:1500], x[1500:], z[1500:], k=16)
    shuffled = knn_redshift_report(x[:1500], rng.permutation(z[:1500]), x[1500:], z[1500:], k=16)
    assert good["r2"] > 0.98 and shuffled["r2"] < 0.1
    assert good["n_test"] == 500 and good["sigma_mad"] < 0.02
