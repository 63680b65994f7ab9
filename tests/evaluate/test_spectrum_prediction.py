"""The scores and baselines of spectrum prediction against brute-force references."""

import numpy as np
import pytest

from astroembed.evaluate.spectrum_prediction import (chi2_per_dof, feature_recovery, knn_mean_spectrum,
                                                     plot_prediction, renormalise, shifted_median_spectrum)

GRID = np.arange(3600.0, 9000.0, 4.0)


def template(rest):
    """A 4000 A break, a sloped continuum and H-alpha / [O II] lines (rest frame)."""
    cont = np.where(rest > 4000, 1.0, 0.5) * (1 + 0.0001 * (rest - 4000))
    lines = sum(a * np.exp(-0.5 * ((rest - c) / 3.0) ** 2) for c, a in ((3728.5, 2.0), (6564.6, 4.0)))
    return cont + lines


def test_chi2_per_dof_by_hand():
    observed = np.array([[2.0, 4.0, -2.0, 100.0]])  # median |flux| over the 3 valid pixels: 2
    valid = np.array([[True, True, True, False]])
    ivar = np.array([[1.0, 0.25, 1.0, 1.0]])
    predicted = np.array([[1.0, 1.0, 0.0, 7.0]])   # median |pred| over valid pixels: 1
    # normalised: obs (1, 2, -1), pred (1, 1, 0), ivar x 2^2 = (4, 1, 4): chi2 = (0 + 1 + 4) / 3
    assert chi2_per_dof(predicted, observed, ivar, valid)[0] == pytest.approx(5 / 3)
    assert chi2_per_dof(3.0 * observed, observed, ivar, valid)[0] == pytest.approx(0.0)  # scale-free


def test_knn_mean_spectrum_matches_brute_force():
    rng = np.random.default_rng(0)
    train = {"vector": rng.normal(size=(30, 8)), "flux": rng.normal(size=(30, 12)),
             "valid": rng.uniform(size=(30, 12)) > 0.2, "log10_scale": rng.normal(size=30)}
    queries = rng.normal(size=(4, 8))
    shape, scale = knn_mean_spectrum(train, queries, k=5)
    unit = train["vector"] / np.linalg.norm(train["vector"], axis=1, keepdims=True)
    for q in range(4):
        near = np.argsort(-(unit @ (queries[q] / np.linalg.norm(queries[q]))))[:5]
        for j in range(12):
            use = [i for i in near if train["valid"][i, j]]
            expected = np.mean([train["flux"][i, j] for i in use]) if use else 0.0
            assert shape[q, j] == pytest.approx(expected)
        assert scale[q] == pytest.approx(train["log10_scale"][near].mean())


def test_shifted_median_recovers_the_template_at_the_neighbours_redshift():
    z = np.linspace(0.02, 0.3, 40)
    train = {"redshift": z, "vector": np.stack([np.cos(z * 10), np.sin(z * 10)], 1),
             "flux": np.stack([template(GRID / (1 + zz)) for zz in z]), "valid": np.ones((40, GRID.size), bool),
             "log10_scale": np.zeros(40)}
    query_z = 0.15
    shape, _, z_knn = shifted_median_spectrum(train, np.array([[np.cos(1.5), np.sin(1.5)]]), GRID, k=3)
    assert z_knn[0] == pytest.approx(query_z, abs=0.01)
    truth = template(GRID / (1 + z_knn[0]))
    assert np.median(np.abs(shape[0] - truth)) < 0.01


def test_feature_recovery_is_perfect_for_a_perfect_prediction_and_renormalise_is_per_row():
    z = np.array([0.05, 0.1, 0.2, 0.25])
    observed = np.stack([template(GRID / (1 + zz)) * (1 + i) for i, zz in enumerate(z)])
    valid = np.ones(observed.shape, bool)
    result = feature_recovery(observed * 3.0, observed, valid, GRID, z)
    assert result["dn4000"]["median_abs_error"] == pytest.approx(0.0, abs=1e-12)
    assert result["halpha"]["n"] == 4 and result["halpha"]["pearson_r"] == pytest.approx(1.0)
    normalised, scale = renormalise(observed, valid)
    assert np.median(np.abs(normalised), axis=1) == pytest.approx(np.ones(4))
    assert scale == pytest.approx(np.median(observed, axis=1))


def test_plot_prediction_writes_a_png_of_the_seeded_rows(tmp_path):
    rng = np.random.default_rng(0)
    observed = 1 + rng.normal(0, 0.1, size=(8, GRID.size))
    path, rows = plot_prediction(GRID, observed, np.ones(observed.shape, bool), observed, tmp_path / "p.png",
                                 n=3, seed=4)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(rows) == 3
    assert list(rows) == sorted(np.random.default_rng(4).choice(8, size=3, replace=False))
