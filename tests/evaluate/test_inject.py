"""Injected artefacts: each is where and how bright its docstring says, and a k-NN anomaly ranking of the
cutouts puts every kind above normal galaxies."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from astroembed.evaluate.anomaly import KNNOutlierScorer
from astroembed.evaluate.inject import ARTEFACTS, bad_column, blank_sky, cosmic_rays, noise_sigma
from tests.conftest import make_blob_galaxies


def _images(n, seed):
    return np.stack([g.image.flux for g in make_blob_galaxies(n=n, seed=seed)]).astype(np.float64)


def test_noise_estimate_and_artefact_definitions():
    images = _images(4, seed=0)
    np.testing.assert_allclose(noise_sigma(images[0]), 0.02, rtol=0.25)  # the blobs' sky noise
    rng = np.random.default_rng(0)
    diff = cosmic_rays(images[0], rng, n=3) - images[0]
    assert (np.abs(diff) > 0).any(axis=(1, 2)).sum() <= 3 and diff.max() >= 99 * noise_sigma(images[0]).min()
    column = bad_column(images[1], np.random.default_rng(1), n=2)
    changed = np.argwhere((column != images[1]).any(axis=1))  # (band, x) pairs with a changed column
    assert len(np.unique(changed[:, 0])) == 1 and np.ptp(changed[:, 1]) <= 1
    sky = blank_sky(images[2], np.random.default_rng(2))
    np.testing.assert_allclose(sky.std(axis=(1, 2)), noise_sigma(images[2]), rtol=0.1)


@pytest.mark.parametrize("kind", sorted(ARTEFACTS))
def test_knn_distance_ranks_each_artefact_above_normal_galaxies(kind):
    reference = _images(300, seed=1)
    normal, injected = _images(60, seed=2), _images(30, seed=3)
    rng = np.random.default_rng(4)
    injected = np.stack([ARTEFACTS[kind](im, rng) for im in injected])
    features = lambda a: (a / 0.02).reshape(len(a), -1)  # noqa: E731 - pixels in units of the sky noise
    scorer = KNNOutlierScorer(k=10, metric="euclidean").fit(features(reference))
    scores = scorer.score(features(np.r_[normal, injected]))
    truth = np.r_[np.zeros(len(normal)), np.ones(len(injected))]
    assert roc_auc_score(truth, scores) >= 0.9


def test_injection_auc_compares_the_same_galaxies_with_and_without_artefacts():
    from astroembed.evaluate.inject import injection_auc

    embed = lambda a: (np.asarray(a) / 0.02).reshape(len(a), -1)  # noqa: E731 - pixels as the "embedding"
    result = injection_auc(embed, embed(_images(300, seed=1)), _images(40, seed=2), kinds=["satellite_trail"])
    assert set(result) == {"satellite_trail"}
    assert result["satellite_trail"]["knn"] >= 0.9 and result["satellite_trail"]["knn_median_pvalue"] < 0.05


def test_injection_auc_scores_the_pixel_test_and_the_combined_ranking():
    """An embedding blind to the artefact (a cutout's total flux only) misses cosmic rays; the pixel test and
    the combined ranking find them."""
    from astroembed.evaluate.inject import injection_auc

    reference, images = _images(200, seed=1), _images(40, seed=2)
    embed = lambda a: np.c_[np.asarray(a).sum(axis=(1, 2, 3)), np.zeros(len(a))]  # noqa: E731
    result = injection_auc(embed, embed(reference), images, kinds=["cosmic_rays"], reference_images=reference)
    r = result["cosmic_rays"]
    assert r["knn"] < 0.75 and r["pixel"] >= 0.95 and r["combined"] >= 0.9
    assert r["combined_median_pvalue"] <= 0.05 <= r["knn_median_pvalue"]
