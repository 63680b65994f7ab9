"""The helper probes the main job and experiments use: known answers (exact linear laws, separable classes,
a known k-NN mean) and the seeded split."""

import numpy as np
import pytest

from astroembed.evaluate.probes import knn_regressor, linear_classifier, linear_regressor, pca_baseline, split_indices


def test_split_is_seeded_disjoint_and_complete():
    train, test = split_indices(100, 0.3, seed=1)
    assert len(test) == 30 and len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.r_[train, test]), np.arange(100))
    assert np.array_equal(split_indices(100, 0.3, seed=1)[1], test)
    assert not np.array_equal(split_indices(100, 0.3, seed=2)[1], test)
    with pytest.raises(ValueError, match="test_fraction"):
        split_indices(10, 1.0)


def test_linear_regressor_recovers_an_exact_linear_law():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)) * [1.0, 10.0, 0.1]  # scales differ: the probe standardises first
    y = 2.0 * x[:, 0] - 0.3 * x[:, 1] + 5.0 * x[:, 2] + 1.0
    probe = linear_regressor().fit(x[:150], y[:150])
    np.testing.assert_allclose(probe.predict(x[150:]), y[150:], atol=0.02)


def test_linear_classifier_separates_separable_classes_and_not_random_ones():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 4))
    label = (x[:, 0] + x[:, 1] > 0).astype(int)
    probe = linear_classifier().fit(x[:300], label[:300])
    assert np.mean(probe.predict(x[300:]) == label[300:]) > 0.95
    shuffled = linear_classifier().fit(x[:300], rng.permutation(label[:300]))
    assert np.mean(shuffled.predict(x[300:]) == label[300:]) < 0.65


def test_knn_regressor_is_the_mean_of_equally_near_neighbours_by_cosine():
    # Training vectors at +-0.2 rad around the query's direction (lengths differ: cosine ignores them).
    train = np.array([[np.cos(0.2), np.sin(0.2)], [2 * np.cos(-0.2), 2 * np.sin(-0.2)], [0.0, -1.0]])
    prediction = knn_regressor(k=2).fit(train, [1.0, 3.0, 100.0]).predict([[5.0, 0.0]])
    assert prediction[0] == pytest.approx(2.0)


def test_pca_baseline_keeps_the_directions_of_largest_variance():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 5)) * [10.0, 0.1, 0.1, 3.0, 0.1]
    pca = pca_baseline(n_components=2).fit(x)
    assert pca.transform(x).shape == (500, 2)
    dominant = np.sort(np.abs(pca.components_).argmax(axis=1))
    assert dominant.tolist() == [0, 3]


def test_held_out_ids_are_the_test_part_of_the_seeded_split_in_survey_order():
    from astroembed.evaluate.probes import held_out_ids

    ids = np.array([f"g{i:03d}" for i in range(50)])[::-1]  # survey order, not sorted order
    _, test = split_indices(50, 0.3, seed=4)
    assert np.array_equal(held_out_ids(ids, 0.3, seed=4), ids[test])
    assert len(held_out_ids(ids, 0.3, seed=4)) == 15
