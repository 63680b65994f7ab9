"""Pixel-quality artefact scores: every injected artefact kind is found from the pixels, a bright compact
galaxy core is not a cosmic ray, the p-value is calibrated on normal cutouts, and masked pixels (NaN flux,
ivar <= 0) are filled rather than flagged."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from astroembed.evaluate.anomaly import rank_catalog
from astroembed.evaluate.inject import ARTEFACTS
from astroembed.evaluate.pixel_quality import FEATURES, PixelArtefactScorer, pixel_features
from tests.conftest import make_blob_galaxies

SIGMA = 0.02  # the blobs' sky noise


def _blobs(n, seed, size=64):
    galaxies = make_blob_galaxies(n=n, size=size, seed=seed)
    return (np.stack([g.image.flux for g in galaxies]).astype(np.float64),
            np.stack([g.image.ivar for g in galaxies]).astype(np.float64))


@pytest.fixture(scope="module")
def reference():
    images, ivar = _blobs(160, seed=11)
    return PixelArtefactScorer(seed=0).fit(pixel_features(images, ivar))


@pytest.fixture(scope="module")
def normal():
    images, ivar = _blobs(40, seed=12)
    return images, ivar, pixel_features(images, ivar)


@pytest.mark.parametrize("kind", sorted(ARTEFACTS))
def test_each_injected_artefact_ranks_above_the_same_galaxies(kind, reference, normal):
    images, ivar, normal_features = normal
    rng = np.random.default_rng(5)
    injected = np.stack([ARTEFACTS[kind](im, rng) for im in images])
    scores = reference.score(np.r_[normal_features, pixel_features(injected, ivar)])
    truth = np.r_[np.zeros(len(images)), np.ones(len(images))]
    assert roc_auc_score(truth, scores) >= 0.95
    # and most injected cutouts are flagged at the 5 % level
    assert np.mean(reference.p_value_of_scores(scores[len(images):]) <= 0.05) >= 0.8


def _gaussian(size, sigma_px, peak, centre=None):
    yy, xx = np.mgrid[:size, :size]
    cy, cx = centre or ((size - 1) / 2, (size - 1) / 2)
    return peak * np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / sigma_px ** 2)


def test_a_bright_compact_core_is_not_a_cosmic_ray_but_a_single_hot_pixel_is(reference):
    rng = np.random.default_rng(3)
    size = 64
    sky = SIGMA * rng.standard_normal((2, 3, size, size))
    # a galaxy core 2000 sigma bright with a PSF-like width (FWHM 4.7 px, as a 1.2" seeing at 0.262"/px)
    core = sky[0] + _gaussian(size, 2.0, 2000 * SIGMA)[None]
    # a far fainter cosmic ray: one pixel 40 sigma, one band
    ray = sky[1].copy()
    ray[1, 20, 40] += 40 * SIGMA
    features = pixel_features(np.stack([core, ray]))
    sharp = FEATURES.index("sharp")
    assert features[0, sharp] < reference.centre_[sharp] + 3 * reference.scale_[sharp]
    assert features[1, sharp] > 20
    p = reference.p_value(features)
    assert p[0] > 0.05 and p[1] < 0.05


def test_p_values_are_calibrated_on_normal_cutouts(reference):
    images, ivar = _blobs(300, seed=13)
    p = reference.p_value(pixel_features(images, ivar))
    for level in (0.05, 0.1, 0.2):
        # conformal: P(p <= a) <= a; three binomial standard errors of slack for 300 draws
        assert np.mean(p <= level) <= level + 3 * np.sqrt(level * (1 - level) / len(p))
    assert np.mean(p <= 0.5) >= 0.3  # and not trivially conservative


def test_masked_pixels_are_filled_not_flagged(normal, reference):
    images, ivar, clean = normal
    images, ivar = images[:6].copy(), ivar[:6].copy()
    images[0, 0, 30, 30] = np.nan  # a NaN pixel, in the galaxy
    images[1, 1, 10, 40], ivar[1, 1, 10, 40] = 1e6, 0.0  # a huge value the ivar marks as no information
    images[2, 2, :, 17], ivar[2, 2, :, 17] = 0.0, 0.0  # a dead column, masked
    images[3, 0, 5:9, 5:9], ivar[3, 0, 5:9, 5:9] = 50.0, -0.0  # a flat block at ivar = -0: still masked
    images[4, 1, 32, 32], ivar[4, 1, 32, 32] = 1.0, np.nan  # non-finite ivar
    features = pixel_features(images, ivar)
    assert np.isfinite(features).all()
    p = reference.p_value(features)
    assert (p > 0.05).all(), dict(zip(range(6), np.round(reference.feature_z(features), 1).tolist()))
    # the same hot pixel without ivar is a detected artefact: the masking, not luck, kept it quiet
    assert reference.p_value(pixel_features(images[1:2]))[0] < 0.05


def test_an_all_masked_band_is_neutral_and_shapes_are_checked():
    images, ivar = _blobs(2, seed=14)
    ivar[0, 2] = 0.0
    assert np.isfinite(pixel_features(images, ivar)).all()
    with pytest.raises(ValueError, match="bands, H, W"):
        pixel_features(images[0])
    with pytest.raises(ValueError, match="ivar shape"):
        pixel_features(images, ivar[:, :2])
    with pytest.raises(ValueError, match="at least 2"):
        PixelArtefactScorer().fit(np.zeros((1, 5)))


def test_rank_catalog_combines_embedding_and_pixel_p_values():
    rng = np.random.default_rng(0)
    images, ivar = _blobs(200, seed=15)
    reference_pixels = pixel_features(images[80:], ivar[80:])
    images, ivar = images[:80], ivar[:80]
    images[:6] = np.stack([ARTEFACTS["cosmic_rays"](im, rng) for im in images[:6]])
    pixels = pixel_features(images, ivar)
    # embeddings that cannot see the artefact (as a contrastive encoder's): noise only
    X, reference = rng.standard_normal((len(images), 8)), rng.standard_normal((120, 8))
    columns = rank_catalog(X, reference, pixels=pixels, reference_pixels=reference_pixels)
    assert {"pixel_artefact_score", "pixel_artefact_pvalue", "anomaly_pvalue", "anomaly_rank"} <= set(columns)
    expected = np.minimum(1, 2 * np.minimum(columns["ood_pvalue"], columns["pixel_artefact_pvalue"]))
    np.testing.assert_allclose(columns["anomaly_pvalue"], expected)
    assert set(np.argsort(columns["anomaly_rank"])[:6]) == set(range(6))  # the six hit cutouts rank first
    assert sorted(columns["anomaly_rank"]) == list(range(1, len(images) + 1))
    # ranked against itself (cross-fitted halves, each calibrated on the other, rays included) they still lead
    own = rank_catalog(X, pixels=pixels)
    assert np.median(own["anomaly_rank"][:6]) <= 8
    with pytest.raises(ValueError, match="reference's pixel features"):
        rank_catalog(X, reference, pixels=pixels)
    without = rank_catalog(X, reference)
    np.testing.assert_array_equal(without["anomaly_pvalue"], without["ood_pvalue"])
