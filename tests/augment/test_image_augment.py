"""Physics of the batched image augmentations, against independent references (GalSim renderings,
second moments measured in numpy, published R_b values, numpy rot90/flip)."""

import json
import math

import galsim
import numpy as np
import pytest
import torch

from astroembed.augment.extinction import extinction_coefficients
from astroembed.augment.image import ImageAugmentConfig, ImageAugmenter
from astroembed.augment.ops import (MATMUL_BLUR_MAX_SIZE, add_noise, affine_crop, blur_to_fwhm, dihedral,
                                    estimate_noise_sigma, gaussian_blur, redden)

PIX = 0.262
GRZ = ["g", "r", "z"]


def render(profile, size=96, offset=(0.0, 0.0)):
    """A GalSim profile sampled at pixel centres (no pixel convolution), centred on the array centre."""
    img = profile.drawImage(nx=size, ny=size, scale=PIX, method="no_pixel", offset=offset)
    return img.array.astype(np.float64)


def moments(img):
    """Flux, centroid (x, y) and second moments (Mxx, Myy, Mxy) in pixels."""
    img = np.asarray(img, dtype=np.float64)
    y, x = np.indices(img.shape)
    f = img.sum()
    cx, cy = (img * x).sum() / f, (img * y).sum() / f
    mxx = (img * (x - cx) ** 2).sum() / f
    myy = (img * (y - cy) ** 2).sum() / f
    mxy = (img * (x - cx) * (y - cy)).sum() / f
    return f, cx, cy, mxx, myy, mxy


def fwhm_arcsec(img):
    _, _, _, mxx, myy, _ = moments(img)
    return 2.0 * math.sqrt(2.0 * math.log(2.0)) * math.sqrt(0.5 * (mxx + myy)) * PIX


def geometry_only(**kw):
    base = dict(rotate=False, rot90=False, flip=False, max_shift=0.0, scale_range=(1.0, 1.0),
                physical=False, noise=False)
    base.update(kw)
    return ImageAugmentConfig(**base)


# ------------------------------------------------------------------------------------------- blur
def test_blur_brings_gaussian_psf_to_target_fwhm():
    now = [1.0, 1.2, 1.4]
    target = [1.8, 1.5, 1.3]  # the last is sharper than the image: must be left alone
    stars = np.stack([render(galsim.Gaussian(fwhm=f, flux=10.0)) for f in now])[None]
    out, factor = blur_to_fwhm(torch.tensor(stars, dtype=torch.float64), torch.tensor([now]),
                               torch.tensor([target]), PIX)
    out = out[0].numpy()
    for b in range(2):
        assert fwhm_arcsec(out[b]) == pytest.approx(target[b], rel=0.01)
        assert out[b].sum() == pytest.approx(10.0, rel=1e-3)
    np.testing.assert_array_equal(out[2], stars[0, 2])
    assert factor[0, 2] == 1.0


def test_blur_of_a_moffat_star_matches_galsim_convolution():
    """Blurring a Moffat PSF by our kernel equals GalSim's analytic convolution with the same Gaussian."""
    moffat = galsim.Moffat(beta=3.5, fwhm=1.1, flux=5.0)
    star = render(moffat)
    now, target = 1.1, 1.7
    sigma_aug = math.sqrt(target ** 2 - now ** 2) / 2.3548200450309493
    expected = render(galsim.Convolve(moffat, galsim.Gaussian(sigma=sigma_aug)))
    out, _ = blur_to_fwhm(torch.tensor(star)[None, None], torch.tensor([[now]]), torch.tensor([[target]]),
                          PIX)
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=2e-3 * expected.max())


def test_blur_noise_factor_predicts_smoothed_white_noise():
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(4, 2, 384, 384, generator=g, dtype=torch.float64)  # smoothed noise: many pixels
    out, factor = blur_to_fwhm(noise, torch.tensor([[1.0, 1.0]] * 4), torch.tensor([[1.5, 2.5]] * 4), PIX)
    measured = out[:, :, 20:-20, 20:-20].pow(2).mean(dim=(0, -2, -1)).sqrt()
    np.testing.assert_allclose(measured.numpy(), factor[0].numpy(), rtol=0.03)


def _numpy_blur(plane, sigma, radius):
    """Reference: reflect-pad, then correlate rows and columns with a Gaussian cut at ceil(4 sigma)."""
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2) * (np.abs(x) <= math.ceil(4 * sigma))
    k /= k.sum()
    padded = np.pad(plane, radius, mode="reflect")  # numpy's "reflect" = torch's: edge not repeated
    rows = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, padded)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, rows)


@pytest.mark.parametrize("size", [40, MATMUL_BLUR_MAX_SIZE + 8])  # matrix products / convolution
def test_gaussian_blur_matches_numpy_reference_and_valid_crop(size):
    rng = np.random.default_rng(size)
    flux = rng.normal(size=(2, 2, size, size))
    sigma = np.array([[0.0, 0.7], [1.6, 3.0]])  # 0 = untouched
    radius = math.ceil(4 * sigma.max())
    out, factor = gaussian_blur(torch.tensor(flux), torch.tensor(sigma))
    valid, _ = gaussian_blur(torch.tensor(flux), torch.tensor(sigma), out_size=size - 2 * radius)
    for i in range(2):
        for b in range(2):
            if sigma[i, b] == 0:
                np.testing.assert_array_equal(out[i, b].numpy(), flux[i, b])
                assert factor[i, b] == 1.0
                continue
            want = _numpy_blur(flux[i, b], sigma[i, b], radius)
            np.testing.assert_allclose(out[i, b].numpy(), want, atol=1e-12)
            np.testing.assert_allclose(valid[i, b].numpy(), want[radius:-radius, radius:-radius], atol=1e-12)


# ------------------------------------------------------------------------------------ reddening
@pytest.mark.parametrize("bands,system,expected", [
    (["g", "r", "z"], "decam", [3.214, 2.165, 1.211]),  # Schlafly & Finkbeiner 2011, Table 6
    (["u", "g", "r", "i", "z"], "sdss", [4.239, 3.303, 2.285, 1.698, 1.263]),
    (["g", "r", "i", "z", "y"], "hsc", [3.24, 2.276, 1.633, 1.263, 1.075]),
])
def test_reddening_changes_colours_by_delta_r_times_ebv(bands, system, expected):
    rng = np.random.default_rng(0)
    flux = torch.tensor(rng.uniform(0.1, 5.0, size=(4, len(bands), 8, 8)))
    ebv = torch.tensor([0.0, 0.03, 0.1, -0.05])
    out, _ = redden(flux, bands, ebv, system)
    mag_in = -2.5 * np.log10(flux.numpy())
    mag_out = -2.5 * np.log10(out.numpy())
    for i in range(len(bands) - 1):
        colour_change = (mag_out[:, i] - mag_out[:, i + 1]) - (mag_in[:, i] - mag_in[:, i + 1])
        # -2.5 log10(f_i / f_i+1) grows by (R_i - R_i+1) dE: 2.5 log10 of the ratio by -(R_i - R_i+1) dE
        want = (expected[i] - expected[i + 1]) * ebv.numpy()[:, None, None]
        np.testing.assert_allclose(colour_change, np.broadcast_to(want, colour_change.shape), atol=1e-9)


def test_qualified_band_names_and_unknown_band():
    assert extinction_coefficients(["sdss_u", "hsc2017-y", "decam-g"]) == [4.239, 1.075, 3.214]
    with pytest.raises(ValueError, match="no Galactic extinction coefficient.*'w1'"):
        extinction_coefficients(["g", "w1"])
    aug = ImageAugmenter(ImageAugmentConfig(crop_size=16))
    with pytest.raises(ValueError, match="physical=False"):
        aug(torch.rand(2, 3, 32, 32), ["R", "G", "B"])


# ---------------------------------------------------------------------------------------- noise
def test_noise_reaches_target_sigma_from_ivar_and_from_robust_estimate():
    g = torch.Generator().manual_seed(2)
    sigma_in = torch.tensor([[0.01, 0.02, 0.005]])
    blank = torch.randn(1, 3, 512, 512, generator=g) * sigma_in[:, :, None, None]
    ivar = (1.0 / sigma_in ** 2)[:, :, None, None].expand_as(blank)
    target = torch.tensor([[0.015, 0.05, 0.005]])  # the last equals the input: nothing added
    for est in (estimate_noise_sigma(blank, ivar), estimate_noise_sigma(blank)):
        out = add_noise(blank, est, target, generator=g)
        np.testing.assert_allclose(out.std(dim=(-2, -1))[0].numpy(), target[0].numpy(), rtol=0.02)
    np.testing.assert_allclose(estimate_noise_sigma(blank, ivar)[0].numpy(), sigma_in[0].numpy(), rtol=1e-6)


def test_noise_estimate_ignores_pixels_without_information():
    """ivar = 0 marks a pixel with no information: the median runs over the others; a band whose ivar
    is 0 everywhere falls back to the MAD of its pixels."""
    g = torch.Generator().manual_seed(15)
    flux = torch.randn(1, 2, 64, 64, generator=g) * 0.01
    ivar = torch.full_like(flux, 1 / 0.01 ** 2)
    ivar[0, 0, :40] = 1 / 0.5 ** 2  # 2560 pixels at sigma 0.5, 1536 at 0.01 ...
    ivar[0, 0, :40, :32] = 0.0  # ... 1280 of the noisy ones without information: 0.01 is now the median
    ivar[0, 1] = 0.0
    est = estimate_noise_sigma(flux, ivar, max_pixels=1024)[0]
    assert est[0] == pytest.approx(0.01)  # (counting masked pixels as infinitely noisy would give 0.5)
    assert est[1] == pytest.approx(float(1.4826 * (flux[0, 1] - flux[0, 1].median()).abs().median()), rel=0.1)


def test_pipeline_noise_bookkeeping_through_reddening_and_blur():
    """Reddened and blurred blank sky ends at the absolute target sigma: 'now' is carried exactly."""
    g = torch.Generator().manual_seed(3)
    sigma = 0.01
    blank = torch.randn(2, 3, 320, 320, generator=g) * sigma
    ivar = torch.full_like(blank, 1.0 / sigma ** 2)
    cfg = geometry_only(crop_size=256, physical=True, noise=True, ebv_range=(0.1, 0.1),
                        psf_fwhm_range=(1.6, 1.6), noise_sigma_range={b: (0.012, 0.012) for b in GRZ})
    out = ImageAugmenter(cfg)(blank, GRZ, ivar=ivar, psf_fwhm=1.0, generator=g)
    np.testing.assert_allclose(out.std(dim=(-2, -1)).numpy(), 0.012, rtol=0.03)


@pytest.mark.parametrize("physical,psf_range,target", [
    (False, (1.0, 1.0), 0.009),  # resampling alone leaves 0.01 * 0.67 / s^2 = 0.0055-0.0082
    (True, (1.3, 1.5), 0.0035),  # blur from 1.0 arcsec leaves ~0.003
])
def test_noise_reaches_target_through_rotation_rescale_and_blur(physical, psf_range, target):
    """The view's own noise (input noise smoothed by the bilinear resampling and the blur, scaled by
    1/s^2) is predicted well enough that topping it up lands on the target: a target just above it
    makes any mistake in the prediction show (ignoring the resampling would add nothing here)."""
    g = torch.Generator().manual_seed(13)
    sigma = 0.01
    blank = torch.randn(24, 3, 200, 200, generator=g) * sigma
    cfg = ImageAugmentConfig(crop_size=128, physical=physical, redden=False, psf_fwhm_range=psf_range,
                             noise_sigma_range={b: (target, target) for b in GRZ})
    out = ImageAugmenter(cfg)(blank, GRZ, ivar=torch.full_like(blank, sigma ** -2), psf_fwhm=1.0,
                              generator=g)
    ratio = (out.std(dim=(-2, -1)) / target).numpy()
    assert abs(ratio.mean() - 1) < 0.03 and np.abs(ratio - 1).max() < 0.12


# ------------------------------------------------------------------------------------- geometry
def _galaxy(size=96):
    gal = galsim.Exponential(half_light_radius=1.2, flux=100.0).shear(e1=0.4, e2=0.1)
    return render(galsim.Convolve(gal, galsim.Gaussian(fwhm=1.0)), size)


def test_rotation_preserves_flux_and_turns_the_shape():
    gal = torch.tensor(_galaxy())[None, None].repeat(3, 1, 1, 1)
    angle = torch.tensor([0.3, 1.2, 2.5])
    out = affine_crop(gal, angle, torch.ones(3), torch.zeros(3, 2), 64).numpy()
    f0, _, _, mxx, myy, mxy = moments(_galaxy())
    phi0 = 0.5 * math.atan2(2 * mxy, mxx - myy)
    for i in range(3):
        f, _, _, mxx, myy, mxy = moments(out[i, 0])
        assert f == pytest.approx(f0, rel=0.01)
        dphi = (0.5 * math.atan2(2 * mxy, mxx - myy) - phi0 - angle[i].item()) % math.pi
        assert min(dphi, math.pi - dphi) < 0.02


@pytest.mark.parametrize("s", [0.9, 1.1, 1.25])
def test_rescale_multiplies_size_by_s_and_keeps_total_flux(s):
    gal = _galaxy()
    out = affine_crop(torch.tensor(gal)[None, None], torch.zeros(1), torch.tensor([s]),
                      torch.zeros(1, 2), 80)[0, 0].numpy()
    f0, _, _, mxx0, myy0, _ = moments(gal)
    f, _, _, mxx, myy, _ = moments(out)
    assert f == pytest.approx(f0, rel=0.01)
    assert math.sqrt((mxx + myy) / (mxx0 + myy0)) == pytest.approx(s, rel=0.02)


def test_jitter_moves_the_centroid_by_the_drawn_shift():
    aug = ImageAugmenter(geometry_only(crop_size=64, max_shift=4.0))
    star = torch.tensor(render(galsim.Gaussian(fwhm=1.5, flux=1.0)), dtype=torch.float32)
    flux = star[None, None].repeat(5, 3, 1, 1)
    params = aug.sample_params(flux.shape, torch.Generator().manual_seed(4))
    assert params.shift.abs().max() <= 4.0 and params.shift.abs().max() > 1.0
    out = aug.apply(flux, params, GRZ).numpy()
    for i in range(5):
        _, cx, cy, *_ = moments(out[i, 1])
        np.testing.assert_allclose([cx - 31.5, cy - 31.5], -params.shift[i].numpy(), atol=0.02)


def test_turns_and_flips_are_exact():
    rng = np.random.default_rng(5)
    x = torch.tensor(rng.normal(size=(8, 2, 16, 16)).astype(np.float32))
    k90 = torch.arange(8) % 4
    flip = torch.arange(8) >= 4
    out = dihedral(x, k90, flip).numpy()
    for i in range(8):
        want = np.rot90(x[i].numpy(), int(k90[i]), axes=(-2, -1))
        want = want[..., ::-1] if flip[i] else want
        np.testing.assert_array_equal(out[i], want)
    # through the whole augmenter (identity warp at full size): equal up to float rounding
    aug = ImageAugmenter(geometry_only(crop_size=16, rot90=True, flip=True))
    params = aug.sample_params(x.shape, torch.Generator().manual_seed(6))
    full = aug.apply(x, params, ["a", "b"]).numpy()
    np.testing.assert_allclose(full, dihedral(x, params.k90, params.flip).numpy(), atol=1e-5)


def test_turns_and_flips_folded_into_the_resampling_equal_explicit_ones():
    """affine_crop with k90/flip is one resampling; it equals the warp followed by exact turns."""
    gal = torch.tensor(_galaxy(72), dtype=torch.float32)[None, None].repeat(8, 2, 1, 1)
    g = torch.Generator().manual_seed(14)
    angle, scale = torch.rand(8, generator=g) * 6.28, 0.9 + 0.2 * torch.rand(8, generator=g)
    shift = torch.rand(8, 2, generator=g) * 6 - 3
    k90, flip = torch.arange(8) % 4, torch.arange(8) >= 4
    folded = affine_crop(gal, angle, scale, shift, 48, k90=k90, flip=flip)
    explicit = dihedral(affine_crop(gal, angle, scale, shift, 48), k90, flip)
    torch.testing.assert_close(folded, explicit, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------ the whole batch
def _batch(n=6, size=72):
    rng = np.random.default_rng(7)
    flux = np.stack([_galaxy(size) * rng.uniform(0.01, 0.05, size=(3, 1, 1)) for _ in range(n)])
    flux = flux + rng.normal(0, 0.004, size=flux.shape)
    ivar = np.full(flux.shape, 1 / 0.004 ** 2)
    psf = rng.uniform(0.9, 1.4, size=(n, 3))
    return (torch.tensor(flux, dtype=torch.float32), torch.tensor(ivar, dtype=torch.float32),
            torch.tensor(psf, dtype=torch.float32))


def test_batch_call_equals_per_sample_application():
    flux, ivar, psf = _batch()
    aug = ImageAugmenter(ImageAugmentConfig(crop_size=48))
    params = aug.sample_params(flux.shape, torch.Generator().manual_seed(8))
    batch = aug.apply(flux, params, GRZ, ivar=ivar, psf_fwhm=psf)
    assert batch.shape == (6, 3, 48, 48)
    for i in range(len(flux)):
        one = aug.apply(flux[i:i + 1], params.select(i), GRZ, ivar=ivar[i:i + 1], psf_fwhm=psf[i:i + 1])
        torch.testing.assert_close(one[0], batch[i], atol=1e-6, rtol=1e-5)


def test_fixed_generator_reproduces_views_and_config_roundtrips_json():
    flux, ivar, psf = _batch(3)
    cfg = ImageAugmentConfig(crop_size=40, noise_sigma_range={"g": (0.01, 0.02), "r": (0.01, 0.02),
                                                              "z": (0.02, 0.03)})
    cfg2 = ImageAugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert cfg2 == cfg
    a = ImageAugmenter(cfg)(flux, GRZ, psf_fwhm=psf, generator=torch.Generator().manual_seed(9))
    b = ImageAugmenter(cfg2)(flux, GRZ, psf_fwhm=psf, generator=torch.Generator().manual_seed(9))
    c = ImageAugmenter(cfg2)(flux, GRZ, psf_fwhm=psf, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    with pytest.raises(ValueError, match=r"unknown ImageAugmentConfig key\(s\)"):
        ImageAugmentConfig.from_dict({"crop_sise": 3})


def test_rgb_uint8_gets_geometry_and_noise_only():
    rng = np.random.default_rng(11)
    rgb = torch.tensor(rng.integers(0, 256, size=(4, 40, 40, 3), dtype=np.uint8))
    aug = ImageAugmenter(ImageAugmentConfig(crop_size=24, max_shift=0, rotate=False, scale_range=(1, 1),
                                            rot90=False, flip=False, noise=False))
    out = aug(rgb, generator=torch.Generator().manual_seed(0))  # physical on in config: auto-off
    assert out.shape == (4, 3, 24, 24) and out.dtype == torch.float32
    want = rgb.permute(0, 3, 1, 2).float()[:, :, 8:32, 8:32]
    torch.testing.assert_close(out, want, atol=1e-3, rtol=0)


@pytest.mark.parametrize("flux,bands,kwargs,match", [
    (torch.zeros(3, 32, 32), GRZ, {}, "expected \\(N, B, H, W\\)"),
    (torch.zeros(2, 2, 32, 32), GRZ, {}, "3 band names"),
    (torch.full((2, 3, 32, 32), float("nan")), GRZ, {}, "NaN"),
    (torch.zeros(2, 3, 16, 16), GRZ, {}, "crop_size 24 larger"),
    (torch.zeros(2, 3, 32, 32), GRZ, {"ivar": torch.ones(2, 3, 8, 8)}, "ivar shape"),
    (torch.zeros(2, 3, 32, 32), GRZ, {"psf_fwhm": [1.0, 1.0]}, "image_psf_fwhm"),
])
def test_bad_input_raises_a_clear_value_error(flux, bands, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageAugmenter(ImageAugmentConfig(crop_size=24))(flux, bands, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    flux, ivar, psf = _batch()
    aug = ImageAugmenter(ImageAugmentConfig(crop_size=48))
    params = aug.sample_params(flux.shape, torch.Generator().manual_seed(12))
    cpu = aug.apply(flux, params, GRZ, ivar=ivar, psf_fwhm=psf)
    gpu = aug.apply(flux.cuda(), params.to("cuda"), GRZ, ivar=ivar.cuda(), psf_fwhm=psf.cuda())
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-4)


def test_gain_jitter_scales_each_band_by_a_lognormal_factor():
    from astroembed.augment.image import ImageAugmentConfig, ImageAugmenter

    flux = torch.ones(4000, 3, 8, 8)
    cfg = ImageAugmentConfig(crop_size=8, rotate=False, rot90=False, flip=False, max_shift=0.0,
                             scale_range=(1.0, 1.0), physical=False, noise=False, gain_jitter=0.2)
    out = ImageAugmenter(cfg)(flux, ("R", "G", "B"), generator=torch.Generator().manual_seed(0))
    log_gain = torch.log(out.mean(dim=(2, 3)))
    assert torch.allclose(out, out[:, :, :1, :1].expand_as(out))  # one factor per sample and band
    assert abs(float(log_gain.std()) - 0.2) < 0.01 and abs(float(log_gain.mean())) < 0.01
    assert float(torch.corrcoef(log_gain.T)[0, 1]).__abs__() < 0.06  # bands drawn independently
    off = ImageAugmenter(ImageAugmentConfig(**{**cfg.to_dict(), "gain_jitter": 0.0}))(flux, ("R", "G", "B"))
    assert torch.equal(off, flux)


class _AugmentedViews(torch.utils.data.Dataset):
    def __init__(self, flux):
        self.flux, self.augmenter = flux, ImageAugmenter(ImageAugmentConfig(crop_size=48))

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return self.augmenter(self.flux, GRZ, generator=torch.Generator().manual_seed(i))


def test_augmenting_in_forked_loader_workers_after_the_parent():
    """The normal draws' thread pool is per process: a DataLoader worker forked after the parent drew
    views (and so made its pool) must make its own, not wait forever on the parent's threads."""
    flux = torch.randn(64, 3, 72, 72, generator=torch.Generator().manual_seed(16)) * 0.01  # 64 views: pooled
    data = _AugmentedViews(flux)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the worker, so the same pool size would be reused there
    try:
        in_parent = data[1]
        loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=1, timeout=60)
        from_worker = list(loader)
    finally:
        torch.set_num_threads(threads)
    assert len(from_worker) == 2
    torch.testing.assert_close(from_worker[1], in_parent)  # same generator seed, same views
