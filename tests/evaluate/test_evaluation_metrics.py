"""Downstream metrics against explicit formulas, and the retrieval / reconstruction evaluations."""

import numpy as np
import pytest
import torch

from astroembed.evaluate.metrics import median_abs_dz, outlier_fraction, redshift_residuals, sigma_mad
from astroembed.evaluate.probes import split_indices
from astroembed.preprocess.spectrum import interpolate_gaps
from astroembed.evaluate.redshift import knn_redshift_report
from astroembed.evaluate.retrieval import partner_ranks, retrieval_report


def test_photo_z_metrics_match_their_definitions():
    z_true = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    z_pred = np.array([0.1, 0.25, 0.3, 0.9, 0.48])
    r = (z_pred - z_true) / (1 + z_true)
    np.testing.assert_allclose(redshift_residuals(z_pred, z_true), r)
    assert sigma_mad(z_pred, z_true) == pytest.approx(1.4826 * np.median(np.abs(r - np.median(r))))
    assert outlier_fraction(z_pred, z_true) == pytest.approx(0.2)  # only 0.4 -> 0.9 has |dz|/(1+z) > 0.15
    assert median_abs_dz(z_pred, z_true) == pytest.approx(np.median(np.abs(r)))
    with pytest.raises(ValueError, match="shape"):
        sigma_mad(z_pred[:3], z_true)


def test_split_is_seeded_disjoint_and_complete():
    train, test = split_indices(100, 0.3, seed=1)
    assert len(test) == 30 and len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.r_[train, test]), np.arange(100))
    assert np.array_equal(split_indices(100, 0.3, seed=1)[1], test)
    assert not np.array_equal(split_indices(100, 0.3, seed=2)[1], test)


def test_knn_redshift_recovers_a_smooth_function_of_the_embedding():
    rng = np.random.default_rng(0)
    z = rng.uniform(0.0, 0.5, 2000)
    angle = z * np.pi  # embeddings on a circle arc: cosine neighbours have close redshifts
    x = np.c_[np.cos(angle), np.sin(angle)] + rng.normal(0, 0.01, (2000, 2))
    good = knn_redshift_report(x[:1500], z[:1500], x[1500:], z[1500:], k=16)
    shuffled = knn_redshift_report(x[:1500], rng.permutation(z[:1500]), x[1500:], z[1500:], k=16)
    assert good["r2"] > 0.98 and shuffled["r2"] < 0.1
    assert good["n_test"] == 500 and good["sigma_mad"] < 0.02


def test_partner_ranks_match_a_brute_force_loop():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    ranks = partner_ranks(a, b)
    for i in range(40):
        sims = [a[i] @ b[j] / np.linalg.norm(a[i]) / np.linalg.norm(b[j]) for j in range(40)]
        assert ranks[i] == sum(s > sims[i] for s in sims)


def test_retrieval_report_perfect_and_chance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 16))
    perfect = retrieval_report(x, x + 1e-3 * rng.normal(size=x.shape))
    assert perfect["top1"] == 1.0 and perfect["top1pct"] == 1.0 and perfect["median_rank"] == 0
    random = retrieval_report(x, rng.normal(size=(300, 16)))
    assert random["top1_chance"] == pytest.approx(1 / 300) and random["top1pct_chance"] == pytest.approx(3 / 300)
    assert random["top1"] < 0.05 and 100 < random["median_rank"] < 200


def test_interpolation_baseline_is_exact_on_straight_lines():
    x = torch.arange(50, dtype=torch.float32)
    flux = torch.stack([2 * x + 1, -x + 3])
    usable = torch.ones(2, 50, dtype=torch.bool)
    usable[:, 10:20] = False
    usable[1, 30:45] = False
    torch.testing.assert_close(interpolate_gaps(flux, usable), flux)
    bumped = flux.clone()
    bumped[:, 12] = 100.0  # hidden values never influence the interpolation
    torch.testing.assert_close(interpolate_gaps(bumped, usable), flux)


def test_neighbour_redshift_report_separates_informative_from_random_embeddings():
    from astroembed.evaluate.neighbours import neighbour_redshift_report

    rng = np.random.default_rng(3)
    z = rng.uniform(0.0, 0.5, 1000)
    good = np.c_[np.cos(z * np.pi), np.sin(z * np.pi)] + rng.normal(0, 0.01, (1000, 2))
    ids = np.array([f"o{i}" for i in range(1000)])
    rep = neighbour_redshift_report(good[:100], ids[:100], z[:100], good, ids, z, k=10)
    assert rep["median_dz_neighbours"] < 0.01 < 0.05 < rep["median_dz_random"]
    noise = rng.normal(size=(1000, 2))
    rep = neighbour_redshift_report(noise[:100], ids[:100], z[:100], noise, ids, z, k=10)
    assert rep["median_dz_neighbours"] > 0.5 * rep["median_dz_random"]
