"""Redshift agreement of embedding neighbours: a hand-worked example and the random baseline."""

import numpy as np
import pytest

from astroembed.evaluate.neighbours import neighbour_redshift_report


def test_neighbour_and_random_dz_on_a_hand_worked_example():
    # Two tight pairs of directions: a's nearest other object is b, c's is d.
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], np.float32)
    ids = np.array(["a", "b", "c", "d"])
    z = np.array([0.1, 0.2, 0.5, 0.7])
    report = neighbour_redshift_report(vectors[[0, 2]], ids[[0, 2]], z[[0, 2]], vectors, ids, z, k=1)
    # |0.2 - 0.1| / 1.1 and |0.7 - 0.5| / 1.5; the median of two is their mean.
    assert report["median_dz_neighbours"] == pytest.approx((0.1 / 1.1 + 0.2 / 1.5) / 2, rel=1e-6)
    assert (report["k"], report["n_queries"]) == (1, 2)
    # Every target at z = 0.3: whatever the draw, random pairs give |0.3 - z_q| / (1 + z_q).
    flat = neighbour_redshift_report(vectors[[0, 2]], ids[[0, 2]], np.array([0.1, 0.2]), vectors, ids,
                                     np.full(4, 0.3), k=2)
    expected = (0.2 / 1.1 + 0.1 / 1.2) / 2
    assert flat["median_dz_random"] == pytest.approx(expected)
    assert flat["median_dz_neighbours"] == pytest.approx(expected)


def test_informative_embeddings_beat_random_pairs_and_noise_does_not():
    rng = np.random.default_rng(3)
    z = rng.uniform(0.0, 0.5, 1000)
    good = np.c_[np.cos(z * np.pi), np.sin(z * np.pi)] + rng.normal(0, 0.01, (1000, 2))
    ids = np.array([f"o{i}" for i in range(1000)])
    rep = neighbour_redshift_report(good[:100], ids[:100], z[:100], good, ids, z, k=10)
    assert rep["median_dz_neighbours"] < 0.01 < 0.05 < rep["median_dz_random"]
    noise = rng.normal(size=(1000, 2))
    rep = neighbour_redshift_report(noise[:100], ids[:100], z[:100], noise, ids, z, k=10)
    assert rep["median_dz_neighbours"] > 0.5 * rep["median_dz_random"]
