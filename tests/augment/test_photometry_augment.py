"""Photometry augmentations: reddening by the images' R_b table (SDSS rows of Schlafly & Finkbeiner 2011,
typed here by hand), noise that the new ivar describes, band dropout that keeps enough bands."""

import numpy as np
import pytest
import torch

from astroembed.augment.photometry import PhotometryAugmentConfig, augment_photometry

SDSS_R = [4.239, 3.303, 2.285, 1.698, 1.263]  # u g r i z, R_V = 3.1
BANDS = ("u", "g", "r", "i", "z")


def test_reddening_dims_each_band_by_its_coefficient_and_keeps_snr():
    flux = torch.tensor([[10.0, 20.0, 30.0, 40.0, 50.0]])
    ivar = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    config = PhotometryAugmentConfig(noise_scale=(0, 0), ebv_range=(0.08, 0.08), p_drop=0.0)
    out, out_ivar = augment_photometry(flux, ivar, BANDS, config)
    factor = 10 ** (-0.4 * 0.08 * np.array(SDSS_R))
    np.testing.assert_allclose(out[0].numpy(), flux[0].numpy() * factor, rtol=1e-6)
    np.testing.assert_allclose((out * out_ivar.sqrt()).numpy(), (flux * ivar.sqrt()).numpy(), rtol=1e-5)


def test_redrawn_noise_has_the_variance_the_new_ivar_says():
    n = 20000
    flux = torch.full((n, 5), 100.0)
    ivar = torch.full((n, 5), 4.0)  # sigma 0.5
    config = PhotometryAugmentConfig(noise_scale=(1.0, 1.0), reddening=False, p_drop=0.0)
    out, out_ivar = augment_photometry(flux, ivar, BANDS, config, torch.Generator().manual_seed(0))
    assert torch.allclose(out_ivar, torch.full_like(out_ivar, 2.0))
    # added noise: variance k^2 / ivar = 0.25; with the 0.25 the stored flux already carries, the view's
    # total variance is 0.5 = 1 / the new ivar
    assert float((out - flux).var()) == pytest.approx(0.25, rel=0.03)


def test_band_dropout_keeps_min_bands_and_never_revives_a_missing_band():
    gen = torch.Generator().manual_seed(1)
    flux = torch.rand(500, 5) * 10 + 1
    ivar = torch.ones(500, 5)
    ivar[:, 0] = 0  # u missing everywhere
    ivar[::2, 1] = 0
    config = PhotometryAugmentConfig(noise_scale=(0, 0), reddening=False, p_drop=0.9, min_bands=2)
    _, out_ivar = augment_photometry(flux, ivar, BANDS, config, gen)
    kept = out_ivar > 0
    assert not kept[:, 0].any()
    assert (kept.sum(1) >= 2).all()
    assert kept.sum() < (ivar > 0).sum()  # some were dropped
    with pytest.raises(ValueError, match="p_drop"):
        PhotometryAugmentConfig(p_drop=1.0)


def test_unknown_band_for_reddening_is_an_error():
    with pytest.raises(ValueError, match="W1"):
        augment_photometry(torch.ones(2, 1), torch.ones(2, 1), ("W1",), PhotometryAugmentConfig())
