"""Objects of another kind or instrument injected in place of a galaxy: a star has its blackbody colours and
the cutout's total flux in a PSF-sized spot; a quasar its power law; another camera's pixels magnify the
galaxy by the ratio of pixel scales and keep its flux; and a k-NN ranking of the cutouts finds each kind."""

import numpy as np
import pytest

from astroembed.evaluate.inject import injection_auc, noise_sigma
from astroembed.evaluate.inject_objects import EFFECTIVE_WAVELENGTHS, OTHER_OBJECTS, other_instrument, quasar, star
from tests.conftest import make_blob_galaxies


def _images(n, seed, size=32):
    return np.stack([g.image.flux for g in make_blob_galaxies(n=n, seed=seed, size=size)]).astype(np.float64)


def test_star_has_blackbody_colours_and_the_cutouts_flux_in_a_point():
    image = _images(1, seed=0)[0]
    out = star(image, np.random.default_rng(0), temperature_range=(5800, 5800))
    flux = out.sum(axis=(1, 2))
    lam = np.array(EFFECTIVE_WAVELENGTHS)
    f_nu = lam ** -3 / np.expm1(1.438777e8 / (lam * 5800))  # Planck by hand
    np.testing.assert_allclose(flux / flux.sum(), f_nu / f_nu.sum(), atol=0.02)  # noise: ~0.02*32 per band
    np.testing.assert_allclose(flux.sum(), np.clip(image, 0, None).sum(), rtol=0.05)
    centre = out[:, 10:22, 10:22].sum() / out.sum()
    assert centre > 0.9  # unresolved: the light within 6 px (2.8 sigma of the 5 px FWHM PSF) of the centre
    np.testing.assert_allclose(noise_sigma(out), noise_sigma(image), rtol=0.25)


def test_quasar_follows_its_power_law():
    out = quasar(_images(1, seed=1)[0], np.random.default_rng(0), slope_range=(-0.5, -0.5))
    flux = out.sum(axis=(1, 2))
    lam = np.array(EFFECTIVE_WAVELENGTHS)
    np.testing.assert_allclose(flux / flux.sum(), (lam / lam[0]) ** 0.5 / ((lam / lam[0]) ** 0.5).sum(), atol=0.02)


def test_other_instrument_magnifies_by_the_pixel_scale_ratio_and_keeps_the_flux():
    yy, xx = np.mgrid[:48, :48] - 23.5
    blob = np.exp(-0.5 * (xx ** 2 + yy ** 2) / 3.0 ** 2)  # sigma 3 px
    image = np.stack([blob, 2 * blob]) + np.random.default_rng(0).normal(0, 1e-4, (2, 48, 48))
    out = other_instrument(image, np.random.default_rng(1), pixel_scale=0.131, survey_pixel_scale=0.262)  # x2
    np.testing.assert_allclose(out.sum(axis=(1, 2)), image.sum(axis=(1, 2)), rtol=0.02)  # flux kept
    w = out[0]
    sigma = np.sqrt((w * (xx ** 2 + yy ** 2)).sum() / w.sum() / 2)
    assert sigma == pytest.approx(6.0, rel=0.05)  # magnified twice


@pytest.mark.parametrize("kind", sorted(OTHER_OBJECTS))
def test_injection_auc_finds_each_other_object(kind):
    embed = lambda a: (np.asarray(a) / 0.02).reshape(len(a), -1)  # noqa: E731 - pixels as the "embedding"
    result = injection_auc(embed, embed(_images(200, seed=1)), _images(30, seed=2), kinds=[kind],
                           injections=OTHER_OBJECTS)
    assert result[kind]["knn"] >= 0.9, result


def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match="unknown injection 'comet'"):
        injection_auc(lambda a: a.reshape(len(a), -1), np.zeros((5, 3 * 32 * 32)), _images(5, seed=0), kinds=["comet"])
