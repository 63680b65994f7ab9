"""Spectrum preprocessing: resampling against a slow explicit reference and analytic cases,
normalisation, patching, and real SDSS spectra."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from astroembed.preprocess.spectrum import (SpectrumPreprocessConfig, interpolate_gaps, normalise,
                                                    patches_to_pixels, prepare_batch, prepare_spectra, resample)
from astroembed.data.records import InvalidDataError


def edges_of(centres):
    c = np.asarray(centres, dtype=np.float64)
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - 0.5 * (c[1] - c[0])], mid, [c[-1] + 0.5 * (c[-1] - c[-2])]])


def resample_reference(flux, ivar, mask, wave, grid):
    """Explicit double loop over input and output pixels: overlap fractions phi_ij = o_ij / d_i,
    ivar_j = sum phi_ij w_i, flux_j = sum phi_ij w_i f_i / ivar_j."""
    ein, eout = edges_of(wave), edges_of(grid)
    out_f, out_w = np.zeros(len(grid)), np.zeros(len(grid))
    for j in range(len(grid)):
        sw = swf = 0.0
        for i in range(len(wave)):
            if not mask[i] or not ivar[i] > 0 or not np.isfinite(flux[i]):
                continue
            overlap = min(ein[i + 1], eout[j + 1]) - max(ein[i], eout[j])
            if overlap > 0:
                phi = overlap / (ein[i + 1] - ein[i])
                sw += phi * ivar[i]
                swf += phi * ivar[i] * flux[i]
        out_w[j] = sw
        out_f[j] = swf / sw if sw > 0 else 0.0
    return out_f, out_w, out_w > 0


@pytest.mark.parametrize("case", ["downsample", "upsample", "offset"])
def test_resample_matches_explicit_loop_reference(case):
    rng = np.random.default_rng(1)
    # SDSS-like log-lambda input grids (a different start per row), linear output grid.
    n_in = 80
    waves = np.stack([10 ** (np.log10(4000 + 7 * r) + 1e-4 * 3 * np.arange(n_in)) for r in range(3)])
    lo, hi = waves.min(), waves.max()
    step = {"downsample": 5.3, "upsample": 1.1, "offset": 2.9}[case]
    grid = np.arange(lo - 20, hi + 20, step)  # overhangs the input on both sides
    flux = rng.normal(5, 2, (3, n_in))
    ivar = rng.uniform(0.2, 3, (3, n_in))
    mask = rng.random((3, n_in)) > 0.15
    ivar[1, 10:14] = 0.0
    flux[~mask] = np.nan  # masked pixels may hold anything

    f, w, m = resample(flux, ivar, mask, waves, grid)
    assert isinstance(f, np.ndarray) and f.shape == (3, len(grid)) and m.dtype == bool
    for r in range(3):
        rf, rw, rm = resample_reference(flux[r], ivar[r], mask[r], waves[r], grid)
        np.testing.assert_allclose(w[r], rw, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f[r], rf, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(m[r], rm)
    assert not m[:, 0].any() and not m[:, -1].any()  # grid beyond the input is masked
    assert np.all(w[:, :3] == 0) and np.all(f[~m] == 0)


def test_constant_spectrum_stays_constant_with_ivar_conserved():
    wave = 10 ** (3.58 + 1e-4 * np.arange(3000))  # SDSS log-lambda, 3802-7594 A
    flux, ivar = np.full(3000, 7.5), np.full(3000, 4.0)
    cfg = SpectrumPreprocessConfig(wave_min=4000, wave_max=7000, wave_step=0.8)
    f, w, m = resample(flux, ivar, None, wave, cfg.grid)
    assert m.all()
    np.testing.assert_allclose(f, 7.5, rtol=1e-6)
    # ivar is information per Angstrom: a pixel of width 0.8 A gets 4 * 0.8 / (input width there).
    in_width = np.interp(cfg.grid, wave, np.gradient(wave))
    np.testing.assert_allclose(w, 4.0 * 0.8 / in_width, rtol=2e-3)


def test_two_pixels_into_one_and_one_into_two():
    wave = np.array([1.0, 2.0, 3.0, 4.0])
    f, w, m = resample(np.array([1.0, 3.0, 5.0, 7.0]), np.ones(4), None, wave, np.array([1.5, 3.5]))
    np.testing.assert_allclose(w, [2.0, 2.0])  # variance of the mean of two ivar-1 pixels is 1/2
    np.testing.assert_allclose(f, [2.0, 6.0])
    # Splitting: each half gets ivar 1/2, the total information (1 per input pixel) is unchanged.
    fine = np.arange(0.75, 4.5, 0.5)
    f, w, m = resample(np.array([1.0, 3.0, 5.0, 7.0]), np.ones(4), None, wave, fine)
    np.testing.assert_allclose(w, 0.5)
    np.testing.assert_allclose(f, [1, 1, 3, 3, 5, 5, 7, 7])
    assert w.sum() == pytest.approx(4.0)


def test_ivar_weighting_and_identity_on_the_same_grid():
    wave = np.array([1.0, 2.0, 3.0, 4.0])
    f, w, _ = resample(np.array([1.0, 4.0, 0, 0]), np.array([3.0, 1.0, 1, 1]), None, wave, np.array([1.5, 3.5]))
    assert f[0] == pytest.approx((3 * 1 + 1 * 4) / 4) and w[0] == pytest.approx(4.0)
    rng = np.random.default_rng(0)
    grid = SpectrumPreprocessConfig(wave_min=4000, wave_max=4100, wave_step=2).grid
    flux, ivar = rng.normal(size=grid.size), rng.uniform(1, 2, grid.size)
    f, w, m = resample(flux, ivar, None, grid, grid)
    np.testing.assert_allclose(f, flux, rtol=1e-5)
    np.testing.assert_allclose(w, ivar, rtol=1e-5)


def test_masked_input_never_contributes():
    rng = np.random.default_rng(3)
    wave = np.linspace(4000, 5000, 200)
    flux, ivar = rng.normal(10, 1, 200), rng.uniform(1, 2, 200)
    mask = np.ones(200, bool)
    mask[50:80] = False
    ivar[120:125] = 0.0
    grid = np.linspace(4010, 4990, 90)
    ref = resample(flux, ivar, mask, wave, grid)
    garbage = flux.copy()
    garbage[50:80] = np.nan
    garbage[120:125] = 1e30
    out = resample(garbage, ivar, mask, wave, grid)
    for a, b in zip(ref, out):
        np.testing.assert_array_equal(a, b)
    # Output pixels lying entirely over the masked stretch (4251-4397 A) carry no information.
    inside = (grid > 4260) & (grid < 4390)
    assert inside.any() and not out[2][inside].any() and np.all(out[1][inside] == 0)


def test_torch_batched_matches_numpy_and_keeps_dims():
    rng = np.random.default_rng(4)
    wave = np.linspace(4000, 4500, 120)
    flux, ivar = rng.normal(size=(4, 120)), rng.uniform(0.5, 1, (4, 120))
    grid = np.linspace(4100, 4400, 50)
    f_np, w_np, m_np = resample(flux, ivar, None, wave, grid)
    f_t, w_t, m_t = resample(torch.tensor(flux, dtype=torch.float32), torch.tensor(ivar), None,
                             torch.tensor(wave), grid)
    assert isinstance(f_t, torch.Tensor) and f_t.dtype == torch.float32 and m_t.dtype == torch.bool
    np.testing.assert_allclose(f_t.numpy(), f_np, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_t.numpy(), w_np, rtol=1e-5)
    f1, _, _ = resample(flux[2], ivar[2], None, wave, grid)
    assert f1.shape == (50,)
    np.testing.assert_allclose(f1, f_np[2], rtol=1e-6)


@pytest.mark.parametrize("bad, field", [
    (dict(wavelength=np.array([1.0, 3.0, 2.0, 4.0])), "spectrum_lambda"),
    (dict(ivar=np.array([1.0, -1.0, 1.0, 1.0])), "spectrum_ivar"),
    (dict(mask=np.ones(3, bool)), "spectrum_mask"),
])
def test_bad_input_raises_invalid_data_error_naming_the_field(bad, field):
    args = dict(flux=np.ones(4), ivar=np.ones(4), mask=None, wavelength=np.arange(1.0, 5.0))
    args.update(bad)
    with pytest.raises(InvalidDataError, match=field):
        resample(args["flux"], args["ivar"], args["mask"], args["wavelength"], np.array([1.5, 2.5]))


def test_non_finite_input_is_masked_not_raised():
    flux = np.array([1.0, np.nan, 1.0, 1.0])
    ivar = np.array([1.0, 1.0, np.inf, 1.0])
    f, w, m = resample(flux, ivar, None, np.arange(1.0, 5.0), np.arange(1.0, 5.0))
    np.testing.assert_array_equal(m, [True, False, False, True])
    assert np.isfinite(f).all() and np.isfinite(w).all()


def test_config_round_trip_and_grids():
    cfg = SpectrumPreprocessConfig(wave_step=0.8, flux_clip=None)
    assert cfg.n_pixels == 7781 and cfg.grid[-1] == pytest.approx(9824.0)  # the DESI grid
    assert SpectrumPreprocessConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    default = SpectrumPreprocessConfig()
    # Padding makes the last patch end at or after the last pixel, and no further than needed.
    assert default.n_padded >= default.n_pixels > default.n_padded - default.patch_stride
    with pytest.raises(ValueError, match="unknown"):
        SpectrumPreprocessConfig.from_dict({"wave_stepp": 1.0})
    with pytest.raises(ValueError):
        SpectrumPreprocessConfig(patch_size=10, patch_stride=20)


def test_normalise_scale_is_median_abs_of_valid_pixels_with_floor():
    rng = np.random.default_rng(5)
    flux = rng.normal(3, 2, (3, 50))
    ivar = rng.uniform(1, 2, (3, 50))
    valid = rng.random((3, 50)) > 0.3
    valid[2] = False
    cfg = SpectrumPreprocessConfig()
    f, w, log_s = normalise(torch.tensor(flux), torch.tensor(ivar), torch.tensor(valid), cfg)
    for r in range(2):
        # torch's median of an even count is the lower middle value
        vals = np.sort(np.abs(flux[r][valid[r]]))
        s = vals[(len(vals) - 1) // 2]
        assert 10 ** log_s[r].item() == pytest.approx(s, rel=1e-6)
        np.testing.assert_allclose(f[r].numpy()[valid[r]], flux[r][valid[r]] / s, rtol=1e-6)
        # S/N per pixel is unchanged by normalisation
        np.testing.assert_allclose((f[r] * w[r].sqrt()).numpy()[valid[r]],
                                   (flux[r] * np.sqrt(ivar[r]))[valid[r]], rtol=1e-6)
        assert np.all(f[r].numpy()[~valid[r]] == 0) and np.all(w[r].numpy()[~valid[r]] == 0)
    assert 10 ** log_s[2].item() == pytest.approx(cfg.scale_floor)


def test_patches_are_overlapping_windows_and_bad_pixels_are_zeroed():
    cfg = SpectrumPreprocessConfig(wave_min=4000, wave_max=4199, wave_step=1.0, patch_size=20, patch_stride=10)
    rng = np.random.default_rng(6)
    flux = rng.normal(5, 1, (2, cfg.n_pixels))
    ivar = np.ones_like(flux)
    mask = np.ones_like(flux, bool)
    mask[0, 33:47] = False
    flux[0, 33:47] = np.nan
    batch = prepare_batch(flux, ivar, mask, cfg.grid, cfg)
    assert batch["patch_flux"].shape == (2, cfg.n_patches, 20) == batch["patch_valid"].shape
    assert all(torch.isfinite(v).all() for v in batch.values())
    pf, pv = batch["patch_flux"].numpy(), batch["patch_valid"].numpy()
    px = batch["flux"].numpy()
    for k in range(cfg.n_patches):
        np.testing.assert_array_equal(pf[:, k], px[:, 10 * k: 10 * k + 20])
    assert np.all(pv[0, 3, 3:17] == 0) and np.all(pf[0, 3, 3:17] == 0) and pv[0, 3, 0] == 1
    assert batch["valid"][:, cfg.n_pixels:].sum() == 0  # padding is invalid
    s = 10 ** batch["log10_scale"].numpy()
    np.testing.assert_allclose(px[1, :cfg.n_pixels] * s[1], flux[1], rtol=1e-5)


def test_patches_to_pixels_marks_the_union_of_patch_windows():
    m = torch.tensor([[False, True, False, False, True]])
    pix = patches_to_pixels(m, 4, 2, 12)
    expected = np.zeros(12, bool)
    expected[2:6] = expected[8:12] = True
    np.testing.assert_array_equal(pix[0].numpy(), expected)


def read_sdss(path):
    from astropy.io import fits

    with fits.open(path) as hdul:
        d = hdul["COADD"].data
        return SimpleNamespace(wavelength=10 ** d["loglam"].astype(np.float64), flux=d["flux"].astype(np.float64),
                               ivar=d["ivar"].astype(np.float64), mask=d["and_mask"] == 0)


def test_real_sdss_spectra_resample_and_patch(shared_data):
    files = sorted((shared_data / "spectra" / "sdss").glob("spec-*.fits"))
    if not files:
        pytest.skip("no SDSS spec files in shared data")
    spectra = [read_sdss(p) for p in files]
    cfg = SpectrumPreprocessConfig()
    batch = prepare_spectra(spectra, cfg)
    assert batch["patch_flux"].shape == (len(files), cfg.n_patches, cfg.patch_size)
    assert all(torch.isfinite(v).all() for v in batch.values())
    grid = cfg.grid
    valid = batch["valid"][:, :cfg.n_pixels].numpy() > 0
    for s, v in zip(spectra, valid):
        outside = (grid < s.wavelength[0] - 2) | (grid > s.wavelength[-1] + 2)
        assert not v[outside].any()  # SDSS stops at ~3800 and ~9200 A, the model grid does not
    # Against a dense overlap-matrix reference (an independent formulation), on the spectrum with the
    # most flagged pixels and on the first one.
    worst = int(np.argmin([np.mean(s.mask) for s in spectra]))
    for k in {0, worst}:
        s = spectra[k]
        f, w, m = resample(s.flux, s.ivar, s.mask, s.wavelength, grid)
        ein, eout = edges_of(s.wavelength), edges_of(grid)
        overlap = np.clip(np.minimum(ein[1:, None], eout[None, 1:]) - np.maximum(ein[:-1, None], eout[None, :-1]),
                          0, None) / np.diff(ein)[:, None]  # phi_ij, (n_in, n_out)
        good = s.mask & (s.ivar > 0)
        w_in = np.where(good, s.ivar, 0.0)
        ref_w = w_in @ overlap
        ref_f = np.divide((w_in * np.where(good, s.flux, 0.0)) @ overlap, ref_w, out=np.zeros_like(ref_w),
                          where=ref_w > 0)
        np.testing.assert_array_equal(m, ref_w > 0)
        np.testing.assert_allclose(w, ref_w, rtol=1e-4, atol=1e-6 * ref_w.max())
        np.testing.assert_allclose(f, ref_f, rtol=1e-4, atol=1e-4 * np.abs(ref_f).max())
    # Flux conservation on real data (uniform weights, nothing masked): the integral of the flux
    # density over 4501-8499 A, edge to edge on the model grid, is unchanged.
    s0 = spectra[0]
    f, _, _ = resample(s0.flux, None, None, s0.wavelength, grid)
    eout = edges_of(grid)
    sel = (grid > 4500) & (grid < 8500)
    a, b = eout[:-1][sel][0], eout[1:][sel][-1]
    ein = edges_of(s0.wavelength)
    overlap = np.clip(np.minimum(ein[1:], b) - np.maximum(ein[:-1], a), 0, None)
    before = np.sum(s0.flux * overlap)
    after = np.sum(f[sel] * cfg.wave_step)
    assert after == pytest.approx(before, rel=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_interpolate_gaps_matches_numpy_interp_row_by_row(seed):
    rng = np.random.default_rng(seed)
    flux = rng.normal(size=(40, 60))
    usable = rng.random((40, 60)) < rng.uniform(0.05, 0.9)
    usable[0] = False                      # no usable pixel: zeros
    usable[1] = False
    usable[1, 17] = True                   # one usable pixel: constant
    usable[2, :30] = False                 # leading and trailing gaps: constant extrapolation
    usable[3, 30:] = False
    out = interpolate_gaps(torch.tensor(flux), torch.tensor(usable)).numpy()
    x = np.arange(60)
    for row, (f, u) in enumerate(zip(flux, usable)):
        reference = np.interp(x, x[u], f[u]) if u.any() else np.zeros(60)
        np.testing.assert_allclose(out[row], reference, atol=1e-12, err_msg=f"row {row}")
