"""Measured fluxes beside learned features: the aperture fluxes equal a NumPy sum of the raw cutout's pixels
inside each circle, the binned fluxes an inverse-variance weighted NumPy mean of the input spectrum, masked
pixels never count, bfloat16 autocast does not round them, and a wrapped encoder saves and loads as any model."""

import numpy as np
import pytest
import torch
from torch import nn

from astroembed.models.io import load_model, save_model
from astroembed.models.measured_fluxes import ImageWithApertureFluxes, SpectrumWithBinnedFluxes
from astroembed.preprocess.image import PreprocessConfig, preprocess
from astroembed.preprocess.spectrum import SpectrumPreprocessConfig, prepare_batch

BANDS = ("g", "r", "z")
RADII = (3.0, 6.5, 12.0)


class Constant(nn.Module):
    """An encoder whose features are a fixed learned vector: what the wrapper appends is then plain to see."""

    def __init__(self, embed_dim: int = 4):
        super().__init__()
        self.embed_dim = embed_dim
        self.value = nn.Parameter(torch.arange(embed_dim, dtype=torch.float32))

    def forward(self, x):
        n = (x["flux"] if isinstance(x, dict) else x).shape[0]
        return self.value.expand(n, -1)


def numpy_apertures(flux: np.ndarray, scales, q: float, radii) -> np.ndarray:
    n, b, h, w = flux.shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
    sums = np.stack([flux[:, :, r < radius].sum(-1) for radius in radii], axis=-1)  # (n, b, radii)
    stretched = np.arcsinh(q * np.asarray(scales)[None, :, None] * sums) / np.sqrt(q)
    colours = stretched[:, :-1] - stretched[:, 1:]  # g - r, r - z at each radius
    return np.concatenate([stretched.reshape(n, -1), colours.reshape(n, -1)], axis=1)


def test_aperture_fluxes_are_the_sums_of_the_raw_pixels_inside_each_circle():
    rng = np.random.default_rng(0)
    flux = rng.normal(0.0, 0.05, size=(5, 3, 32, 32)) + rng.uniform(0.1, 3.0, size=(5, 3, 1, 1)) * np.exp(
        -np.hypot(*np.mgrid[-15.5:16.5, -15.5:16.5]) / 4.0)[None, None]
    pre = PreprocessConfig()
    x = preprocess(flux.astype(np.float32), pre, BANDS)
    scales = [pre.band_scales[b] for b in BANDS]
    wrapped = ImageWithApertureFluxes(Constant(), scales, pre.softening, RADII)
    assert wrapped.embed_dim == 4 + (3 + 2) * len(RADII)
    out = wrapped(x).detach().numpy()
    np.testing.assert_array_equal(out[:, :4], np.tile(np.arange(4.0), (5, 1)))
    np.testing.assert_allclose(out[:, 4:], numpy_apertures(flux, scales, pre.softening, RADII), rtol=2e-5, atol=2e-5)


def test_a_point_source_counts_in_the_circles_that_contain_it_only():
    flux = np.zeros((1, 3, 32, 32), np.float32)
    flux[0, 1, 15, 15 + 5] = 10.0  # 5.02 pixels from the centre (15.5, 15.5) of a 32-pixel frame
    pre = PreprocessConfig()
    wrapped = ImageWithApertureFluxes(Constant(), [pre.band_scales[b] for b in BANDS], pre.softening, RADII)
    measured = wrapped.measure(preprocess(flux, pre, BANDS))[0, :3 * len(RADII)].reshape(3, len(RADII)).numpy()
    assert np.all(measured[[0, 2]] == 0)
    assert measured[1, 0] == 0 and measured[1, 1] > 0 and measured[1, 1] == pytest.approx(measured[1, 2], rel=1e-6)


def _spectra(n: int, config: SpectrumPreprocessConfig, seed: int = 0):
    rng = np.random.default_rng(seed)
    wave = config.grid
    continuum = rng.uniform(1.0, 20.0, size=(n, 1)) * (1 + 0.3 * np.sin(wave / 400.0))[None]
    flux = continuum + rng.normal(0, 0.5, (n, wave.size))
    ivar = rng.uniform(0.5, 4.0, size=flux.shape)
    mask = np.ones(flux.shape, bool)
    mask[:, 100:140] = False
    flux[:, 100:140] = 1e6  # masked: must not count
    return wave, flux, ivar, mask


def test_binned_fluxes_are_inverse_variance_means_of_the_input_spectrum():
    config = SpectrumPreprocessConfig(wave_min=3600.0, wave_max=5600.0, wave_step=4.0)
    wave, flux, ivar, mask = _spectra(4, config)
    batch = prepare_batch(flux, ivar, mask, wave, config)
    n_bins = 7
    wrapped = SpectrumWithBinnedFluxes(Constant(), config.n_pixels, n_bins, softening=0.1)
    out = wrapped(batch).detach().numpy()
    edges = np.round(np.linspace(0, config.n_pixels, n_bins + 1)).astype(int)
    w = np.where(mask, ivar, 0.0)
    expected = np.stack([(flux[:, a:b] * w[:, a:b]).sum(1) / w[:, a:b].sum(1)
                         for a, b in zip(edges[:-1], edges[1:])], axis=1)
    stretched = np.arcsinh(expected / 0.1)
    np.testing.assert_allclose(out[:, 4:4 + n_bins], stretched, rtol=1e-4)
    np.testing.assert_allclose(out[:, 4 + n_bins:], stretched[:, :-1] - stretched[:, 1:], rtol=1e-4, atol=1e-5)
    assert wrapped.embed_dim == 4 + 2 * n_bins - 1


def test_a_fully_masked_bin_measures_zero_flux():
    config = SpectrumPreprocessConfig(wave_min=3600.0, wave_max=5600.0, wave_step=4.0)
    wave, flux, ivar, mask = _spectra(2, config)
    mask[:, : config.n_pixels // 5] = False
    measured = SpectrumWithBinnedFluxes(Constant(), config.n_pixels, 5).measure(
        prepare_batch(flux, ivar, mask, wave, config))
    assert torch.all(measured[:, 0] == 0) and torch.all(measured[:, 1:5] > 0)


def test_measured_fluxes_stay_float32_under_bfloat16_autocast():
    rng = np.random.default_rng(1)
    flux = rng.uniform(0.5, 2.0, size=(3, 3, 16, 16)).astype(np.float32)
    pre = PreprocessConfig()
    wrapped = ImageWithApertureFluxes(Constant(), [pre.band_scales[b] for b in BANDS], pre.softening, RADII)
    x = preprocess(flux, pre, BANDS)
    plain = wrapped(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = wrapped(x)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed[:, 4:], plain[:, 4:], rtol=0, atol=0)


def test_a_wrapped_encoder_saves_and_loads_with_its_settings(tmp_path):
    from astroembed.models.spectrum_transformer import SpectrumTransformer, SpectrumTransformerConfig

    config = SpectrumPreprocessConfig(wave_min=3600.0, wave_max=5600.0, wave_step=4.0)
    arch = SpectrumTransformerConfig.for_preprocess(config, dim=16, depth=1, num_heads=2)
    entry = {"model_type": "spectrum_transformer", "model": arch.to_dict()}
    wrapped = SpectrumWithBinnedFluxes(SpectrumTransformer(arch), config.n_pixels, 9, 0.2, encoder_config=entry)
    save_model(wrapped, {"model_type": "spectrum_with_binned_fluxes", "model": wrapped.model_config()}, tmp_path)
    loaded, saved = load_model(tmp_path)
    assert (loaded.n_bins, loaded.softening, loaded.n_pixels) == (9, 0.2, config.n_pixels)
    wave, flux, ivar, mask = _spectra(2, config)
    batch = prepare_batch(flux, ivar, mask, wave, config)
    wrapped.eval(), loaded.eval()
    torch.testing.assert_close(loaded(batch), wrapped(batch))


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="band_scales"):
        ImageWithApertureFluxes(Constant(), [], 1.0)
    with pytest.raises(ValueError, match="radii"):
        ImageWithApertureFluxes(Constant(), [1.0], 1.0, radii=(0.0,))
    with pytest.raises(ValueError, match="n_bins"):
        SpectrumWithBinnedFluxes(Constant(), 10, 11)
    wrapped = ImageWithApertureFluxes(Constant(), [1.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="2 bands, got 3"):
        wrapped.measure(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="prepare_batch"):
        SpectrumWithBinnedFluxes(Constant(), 10, 2).measure({"flux": torch.zeros(1, 10)})


def test_exports_from_before_the_colours_load_without_them(tmp_path):
    from astroembed.models.io import build_from_config

    entry = {"model_type": "image_encoder", "model": {"arch": "small_cnn", "in_channels": 3,
                                                      "widths": [4, 4, 4, 8]}}
    old = {"encoder": entry, "band_scales": [1.0, 1.0, 1.0], "softening": 1.0, "radii": [2.0, 4.0]}
    module = build_from_config({"model_type": "image_with_aperture_fluxes", "model": old})
    assert not module.colours and module.n_measured == 6
    assert module.measure(torch.ones(2, 3, 8, 8)).shape == (2, 6)
    assert build_from_config({"model_type": "image_with_aperture_fluxes",
                              "model": {**old, "colours": True}}).n_measured == 6 + 4
