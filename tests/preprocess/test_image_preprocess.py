"""Preprocessing: the arcsinh stretch, centre crop, RGB path, fitted scales and the viewer colours."""

import json
import math

import numpy as np
import pytest
import torch

from astroembed.preprocess.image import (PreprocessConfig, centre_crop, median_lastdim, preprocess,
                                          render_rgb, robust_sigma)
from astroembed.data.records import InvalidDataError

# Legacy Surveys viewer (legacysurvey/imagine map/views.py dr2_rgb): g, r, z scales, Q, black level
VIEWER = {"g": 6.0, "r": 3.4, "z": 2.2}
Q, M = 20.0, 0.03


def test_arcsinh_known_values():
    flux = torch.zeros(1, 3, 4, 4)
    flux[0, 0, 1, 2] = 0.1
    flux[0, 1, 0, 0] = -0.02
    flux[0, 2, 3, 3] = 5.0
    out = preprocess(flux, PreprocessConfig(), ["g", "r", "z"])
    assert out[0, 0, 1, 2].item() == pytest.approx(math.asinh(12.0) / math.sqrt(20.0), rel=1e-6)  # 0.711022
    assert out[0, 0, 1, 2].item() == pytest.approx(0.711022, abs=1e-5)
    assert out[0, 1, 0, 0].item() == pytest.approx(-math.asinh(20 * 3.4 * 0.02) / math.sqrt(20), rel=1e-6)
    assert out[0, 2, 3, 3].item() == pytest.approx(math.asinh(220.0) / math.sqrt(20.0), rel=1e-6)
    assert out[0, 0, 0, 0].item() == 0.0
    # band order is by name, not by position
    swapped = preprocess(flux[:, [2, 1, 0]], PreprocessConfig(), ["z", "r", "g"])
    torch.testing.assert_close(swapped, out[:, [2, 1, 0]])



def test_arcsinh_over_the_whole_float_range_matches_numpy():
    """The CPU path's own arcsinh (log1p form) against numpy's in float64, from 1e-30 to 1e36 flux."""
    rng = np.random.default_rng(4)
    magnitude = 10.0 ** rng.uniform(-30, 35, size=(2, 3, 40, 40))  # (x 20 s_b stays below float32 max)
    flux = (magnitude * rng.choice([-1.0, 1.0], size=magnitude.shape)).astype(np.float32)
    flux[0, 0, 0, :4] = [0.0, 1e-3, -2.5, 2e36]
    for batch in (flux, flux.clip(-1e15, 1e15)):  # with and without values whose square overflows
        out = preprocess(torch.from_numpy(batch), PreprocessConfig(), ["g", "r", "z"]).double().numpy()
        scale = np.array([6.0, 3.4, 2.2]).reshape(1, 3, 1, 1)
        want = np.arcsinh(20.0 * scale * batch.astype(np.float64)) / np.sqrt(20.0)
        np.testing.assert_allclose(out, want, rtol=2e-6, atol=1e-6)

@pytest.mark.parametrize("size,crop", [(96, 64), (95, 64), (96, 63), (9, 9)])
def test_centre_crop_is_centred(size, crop):
    img = torch.zeros(2, 1, size, size)
    c = (size - 1) / 2
    img[:, :, int(math.floor(c)), int(math.floor(c))] = 1.0
    out = preprocess(img, PreprocessConfig(crop_size=crop, band_scales={"x": 1.0}), ["x"])
    assert out.shape == (2, 1, crop, crop)
    iy, ix = np.unravel_index(int(out[0, 0].argmax()), (crop, crop))
    # the bright pixel stays within half a pixel of the crop centre
    assert abs(iy - (crop - 1) / 2) <= 0.5 and abs(ix - (crop - 1) / 2) <= 0.5
    with pytest.raises(ValueError, match="larger than the image"):
        centre_crop(img, size + 1)


def test_rgb_mode_uint8_and_float():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(3, 20, 20, 3), dtype=np.uint8)
    out = preprocess(rgb, PreprocessConfig(mode="rgb", crop_size=10))
    assert out.shape == (3, 3, 10, 10) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), rgb[:, 5:15, 5:15].transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    as_float = torch.tensor(rgb.transpose(0, 3, 1, 2), dtype=torch.float32)  # records.Image convention
    torch.testing.assert_close(preprocess(as_float, PreprocessConfig(mode="rgb", crop_size=10)), out)
    with pytest.raises(InvalidDataError, match="uint8 RGB must be"):
        preprocess(rgb[..., :2], PreprocessConfig(mode="rgb"))


def test_config_roundtrips_json_and_rejects_bad_values():
    cfg = PreprocessConfig(band_scales={"u": 1.0, "g": 2.0}, softening=10.0, crop_size=48)
    assert PreprocessConfig.from_json(json.dumps(json.loads(cfg.to_json()))) == cfg
    with pytest.raises(ValueError, match=r"unknown PreprocessConfig key\(s\)"):
        PreprocessConfig.from_dict({"mode": "arcsinh", "scales": {}})
    with pytest.raises(ValueError, match="mode must be one of"):
        PreprocessConfig(mode="log")
    with pytest.raises(ValueError, match="no arcsinh scale for bands \\['i'\\]"):
        preprocess(torch.zeros(1, 2, 4, 4), PreprocessConfig(), ["g", "i"])
    with pytest.raises(InvalidDataError, match="NaN"):
        preprocess(torch.full((1, 3, 4, 4), float("nan")), PreprocessConfig(), ["g", "r", "z"])


def test_fit_sets_scale_from_noise():
    g = torch.Generator().manual_seed(0)
    sigma = torch.tensor([0.5, 2.0, 10.0])
    flux = torch.randn(16, 3, 64, 64, generator=g) * sigma[None, :, None, None]
    flux[:, :, 28:36, 28:36] += 100.0  # a bright object must not move the robust estimate much
    cfg = PreprocessConfig.fit(flux, ["a", "b", "c"])
    got = np.array([cfg.band_scales[b] for b in "abc"])
    np.testing.assert_allclose(got, 0.25 / (20.0 * sigma.numpy()), rtol=0.05)


def test_fit_on_real_dr9_cutout_is_close_to_viewer_scales(shared_data):
    from astropy.io import fits

    flux = fits.getdata(shared_data / "cutouts" / "legacysurvey_dr9_grz_256.fits").astype(np.float32)
    cfg = PreprocessConfig.fit(flux[None], ["g", "r", "z"])
    for band, viewer in VIEWER.items():
        assert 0.5 < cfg.band_scales[band] / viewer < 2.0, (band, cfg.band_scales[band])


def _sdss_rgb_reference(img, bands):
    """Straight numpy transcription of the viewer's sdss_rgb with dr2_rgb scales, one image."""
    planes = {"g": 2, "r": 1, "z": 0}
    intensity = 0
    for im, band in zip(img, bands):
        intensity = intensity + np.maximum(0, im * VIEWER[band] + M)
    intensity = intensity / len(bands)
    f_i = np.arcsinh(Q * intensity) / np.sqrt(Q)
    intensity = intensity + (intensity == 0.0) * 1e-6
    rgb = np.zeros(img.shape[1:] + (3,), np.float32)
    for im, band in zip(img, bands):
        rgb[:, :, planes[band]] = (im * VIEWER[band] + M) * f_i / intensity
    return np.clip(rgb, 0, 1)


def test_render_rgb_matches_the_viewer_mapping(shared_data):
    from astropy.io import fits

    flux = fits.getdata(shared_data / "cutouts" / "legacysurvey_dr9_grz_256.fits").astype(np.float32)
    got = render_rgb(flux[None], ["g", "r", "z"])[0]
    np.testing.assert_allclose(got, _sdss_rgb_reference(flux, "grz"), atol=1e-5)
    assert got.shape == (256, 256, 3) and 0.05 < got.mean() < 0.6  # neither black nor white


def test_render_rgb_works_on_cuda_tensors_or_cpu():
    flux = torch.rand(2, 3, 8, 8) * 0.1
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    out = render_rgb(flux.to(dev), ["g", "r", "z"])
    assert isinstance(out, np.ndarray) and out.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(out[1], _sdss_rgb_reference(flux[1].numpy(), "grz"), atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 7, 1024])
def test_median_lastdim_equals_torch_median(n):
    x = torch.randn(5, 3, n, generator=torch.Generator().manual_seed(n))
    torch.testing.assert_close(median_lastdim(x), x.median(dim=-1).values, rtol=0, atol=0)
    torch.testing.assert_close(median_lastdim(x.double()), x.double().median(dim=-1).values)


def test_robust_sigma_from_a_pixel_subset():
    """1.4826 MAD of 1024 of 4096 pixels: unbiased on sky (~3.5 % scatter), and with a galaxy in the
    cutout biased exactly as the full-pixel estimate is (MAD counts the galaxy's pixels as outliers)."""
    g = torch.Generator().manual_seed(3)
    sky = torch.randn(200, 1, 64, 64, generator=g) * 0.02
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    galaxy = torch.exp(-((xx - 32) ** 2 + (yy - 32) ** 2).sqrt() / 3.0)  # above the noise on ~10% of pixels
    sigma = robust_sigma(sky, max_pixels=1024)[:, 0] / 0.02
    assert abs(float(sigma.mean()) - 1) < 0.01 and 0.02 < float(sigma.std()) < 0.05
    subset, full = robust_sigma(sky + galaxy, max_pixels=1024), robust_sigma(sky + galaxy)
    assert abs(float(subset.mean() / full.mean()) - 1) < 0.01
