"""Spectrum augmentations: S/N after noise matches the target, tilts keep lines in place, masked
windows carry no information, wavelengths and inputs are never changed."""

import json

import numpy as np
import pytest
import torch

from astroembed.augment.spectrum import SpectrumAugmentConfig, augment_spectra, median_snr

WAVE = torch.linspace(3600, 9800, 2000, dtype=torch.float64)


def only(**kwargs):
    """A config with every augmentation off except those given."""
    base = dict(p_noise=0.0, p_tilt=0.0, p_regions=0.0)
    base.update(kwargs)
    return SpectrumAugmentConfig(**base)


def test_measured_snr_after_noise_matches_the_drawn_target():
    n = 64
    flux = torch.full((n, 2000), 10.0)
    ivar = torch.full((n, 2000), 1e6)  # S/N 10^4: practically noiseless
    cfg = only(p_noise=1.0, snr_range=(3.0, 30.0))
    f, w, m = augment_spectra(flux, ivar, None, WAVE, cfg, torch.Generator().manual_seed(0))
    target = 10.0 * w[:, 0].sqrt()  # the S/N the new ivar claims; uniform along the spectrum
    assert torch.allclose(w, w[:, :1].expand_as(w))
    assert (target >= 3.0 - 1e-4).all() and (target <= 30.0 + 1e-4).all()
    assert target.std() > 3  # targets really are drawn, not fixed
    measured = f.mean(1) / f.std(1)  # empirical S/N: truth 10 over the noise actually added
    np.testing.assert_allclose(measured.numpy(), target.numpy(), rtol=0.1)
    # and the new ivar describes the noise that is there
    pulls = (f - 10.0) * w.sqrt()
    assert pulls.std().item() == pytest.approx(1.0, abs=0.02)
    assert median_snr(f, w).mean().item() == pytest.approx(target.mean().item(), rel=0.1)


def test_noise_is_never_removed_from_an_already_noisy_spectrum():
    g = torch.Generator().manual_seed(1)
    flux = 2.0 + torch.randn(4, 2000, generator=g)
    ivar = torch.ones(4, 2000)  # S/N ~ 2, below every target
    f, w, _ = augment_spectra(flux, ivar, None, WAVE, only(p_noise=1.0, snr_range=(5.0, 10.0)), g)
    assert torch.equal(f, flux) and torch.equal(w, ivar)


def test_tilt_keeps_a_narrow_line_in_place_and_snr_unchanged():
    pix = torch.arange(2000, dtype=torch.float64)
    line = 5.0 * torch.exp(-0.5 * ((pix - 700.3) / 2.0) ** 2)
    flux = (1.0 + line).repeat(16, 1).float()
    ivar = torch.full_like(flux, 100.0)
    f, w, _ = augment_spectra(flux, ivar, None, WAVE, only(p_tilt=1.0, tilt_max=0.3, tilt_order=2),
                              torch.Generator().manual_seed(2))
    assert not torch.allclose(f, flux)  # it did tilt
    ratio = f / flux  # the multiplicative factor
    assert ratio.min() > 0.5 and ratio.max() < 1.5
    win = slice(680, 721)
    for row in f.double():
        # continuum: straight line through the window edges; the line is what is left above it
        x = pix[win]
        cont = row[680] + (row[720] - row[680]) * (x - 680) / 40
        resid = row[win] - cont
        centroid = (resid * x).sum() / resid.sum()
        assert int(row.argmax()) == 700
        assert centroid.item() == pytest.approx(700.3, abs=0.05)
    torch.testing.assert_close(f * w.sqrt(), flux * ivar.sqrt(), rtol=1e-5, atol=1e-5)


def test_masked_regions_have_zero_ivar_and_leave_the_rest_alone():
    g = torch.Generator().manual_seed(3)
    flux = torch.rand(32, 2000, generator=g) + 1
    ivar = torch.rand(32, 2000, generator=g) + 1
    cfg = only(p_regions=1.0, n_regions=(2, 2), region_width=(100.0, 200.0))
    f, w, m = augment_spectra(flux, ivar, None, WAVE, cfg, g)
    cut = ~m
    assert cut.any(1).all()
    assert (w[cut] == 0).all() and (f[cut] == 0).all()
    assert torch.equal(f[m], flux[m]) and torch.equal(w[m], ivar[m])
    step = float(WAVE[1] - WAVE[0])
    n_cut = cut.sum(1).double() * step
    # two windows of 100-200 A, possibly overlapping or running off an end
    assert (n_cut <= 2 * 200 + 2 * step).all() and (n_cut >= 30).all()


def test_inputs_and_wavelength_untouched_and_bad_pixels_stay_bad():
    g = torch.Generator().manual_seed(4)
    flux = torch.rand(8, 2000, generator=g) * 10
    ivar = torch.rand(8, 2000, generator=g) + 0.5
    mask = torch.ones(8, 2000, dtype=torch.bool)
    mask[:, 100:150] = False
    flux[:, 100:150] = float("nan")
    wave = WAVE.clone()
    copies = [t.clone() for t in (flux, ivar, mask, wave)]
    cfg = SpectrumAugmentConfig(p_noise=1.0, p_tilt=1.0, p_regions=1.0)
    f, w, m = augment_spectra(flux, ivar, mask, wave, cfg, g)
    for before, after in zip(copies, (flux, ivar, mask, wave)):
        assert torch.equal(before.nan_to_num(), after.nan_to_num())
    assert not m[:, 100:150].any()
    good = m & (w > 0)
    assert torch.isfinite(f[good]).all() and (w >= 0).all()


def test_reproducible_with_a_generator():
    flux, ivar = torch.rand(4, 2000) + 5, torch.full((4, 2000), 1e4)
    cfg = SpectrumAugmentConfig(p_noise=1.0, p_tilt=1.0, p_regions=1.0)
    a = augment_spectra(flux, ivar, None, WAVE, cfg, torch.Generator().manual_seed(7))
    b = augment_spectra(flux, ivar, None, WAVE, cfg, torch.Generator().manual_seed(7))
    c = augment_spectra(flux, ivar, None, WAVE, cfg, torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_config_round_trip_and_validation():
    cfg = SpectrumAugmentConfig(snr_range=(2, 20), tilt_order=2)
    assert SpectrumAugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError):
        SpectrumAugmentConfig(tilt_max=1.5)
    with pytest.raises(ValueError):
        SpectrumAugmentConfig(snr_range=(10, 5))
