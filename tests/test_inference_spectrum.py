"""Spectrum and aligned embedders: spectra on any grid (shared or per-row wavelengths, SDSS log-lambda,
DESI linear, MMU -1 padding, lists of records of different lengths) embed exactly like the model on
prepare_batch output; bad input fails naming the field; the aligned export loads through the model
registry alone and embeds both modalities into one unit-norm space."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import astroembed
from astroembed.preprocess.image import PreprocessConfig, preprocess
from astroembed.preprocess.spectrum import SpectrumPreprocessConfig, prepare_batch
from astroembed.data.records import InvalidDataError, Spectrum
from astroembed.models.clip_model import AlignedModel
from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.models.spectrum_transformer import SpectrumTransformer, SpectrumTransformerConfig
from astroembed.train.clip import export_aligned_model
from astroembed.train.spectrum import export_spectrum_encoder

PRE = SpectrumPreprocessConfig(wave_min=3800, wave_max=9800, wave_step=10.0)  # reaches past SDSS
DESI = np.arange(3600.0, 9824.0 + 1e-6, 0.8)          # linear, 7781 pixels
SDSS = 10 ** np.arange(3.5786, 3.9640, 1e-4)           # log-lambda, ~3850 pixels


def spectra(wave, n, seed=0):
    """Smooth continuum + one emission line per row (its position varies), noise-free."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(4500, 8500, (n, 1))
    flux = 5 + 2 * np.sin(wave / 700.0 + rng.uniform(0, 6, (n, 1))) + 20 * np.exp(-0.5 * ((wave - centre) / 8) ** 2)
    return flux.astype(np.float32), np.full(flux.shape, 4.0, np.float32)


@pytest.fixture(scope="module")
def spectrum_model(tmp_path_factory):
    torch.manual_seed(0)
    model = SpectrumTransformer(SpectrumTransformerConfig.for_preprocess(PRE, dim=32, depth=1, num_heads=4,
                                                                         pooling="mean"))
    path = export_spectrum_encoder(model, PRE, tmp_path_factory.mktemp("spec") / "model")
    return astroembed.load(path, precision="32-true"), model.eval()  # exact comparisons: fp32


def reference(model, flux, ivar, mask, wave):
    with torch.no_grad():
        return model(prepare_batch(flux, ivar, mask, wave, PRE)).numpy()


@pytest.mark.parametrize("grid", ["desi", "sdss"])
def test_shared_and_per_row_grids_match_the_model_on_prepare_batch(spectrum_model, grid):
    embedder, model = spectrum_model
    wave = DESI if grid == "desi" else SDSS
    flux, ivar = spectra(wave, 5)
    expected = reference(model, flux, ivar, None, wave)
    got = embedder.embed_spectrum(flux, ivar, wave)
    assert got.shape == (5, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    per_row = embedder.embed_spectrum(flux, ivar, np.tile(wave, (5, 1)), batch_size=2)
    np.testing.assert_allclose(per_row, expected, rtol=1e-5, atol=1e-6)
    single = embedder.embed_spectrum(flux[3], ivar[3], wave)
    np.testing.assert_allclose(single, expected[3:4], rtol=1e-5, atol=1e-6)
    tensors = embedder.embed_spectrum(torch.from_numpy(flux), torch.from_numpy(ivar), torch.from_numpy(wave))
    np.testing.assert_allclose(tensors, expected, rtol=1e-5, atol=1e-6)


def test_padded_rows_and_records_of_different_lengths(spectrum_model):
    embedder, model = spectrum_model
    flux_d, ivar_d = spectra(DESI, 2, seed=1)
    flux_s, ivar_s = spectra(SDSS, 1, seed=2)
    # An MMU-style batch: the SDSS row padded at the end with wavelength -1, flux 0, mask False.
    n = DESI.size
    pad = n - SDSS.size
    flux = np.stack([flux_d[0], np.pad(flux_s[0], (0, pad)), flux_d[1]])
    ivar = np.stack([ivar_d[0], np.pad(ivar_s[0], (0, pad)), ivar_d[1]])
    wave = np.stack([DESI, np.pad(SDSS, (0, pad), constant_values=-1.0), DESI]).astype(np.float32)
    mask = wave > 0
    got = embedder.embed_spectrum(flux, ivar, wave, mask=mask)
    # Each row on its own, unpadded grid (float32 wavelengths, as stored).
    expected = np.concatenate([reference(model, flux_d[:1], ivar_d[:1], None, DESI.astype(np.float32)),
                               reference(model, flux_s, ivar_s, None, SDSS.astype(np.float32)),
                               reference(model, flux_d[1:], ivar_d[1:], None, DESI.astype(np.float32))])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # Whatever sits under the padding never matters, even without a mask (the padded wavelengths lie
    # inside the model grid, so unmasked padding would change the result).
    flux[1, -pad:], ivar[1, -pad:] = 1e3, 1.0
    np.testing.assert_allclose(embedder.embed_spectrum(flux, ivar, wave), expected, rtol=1e-4, atol=1e-5)
    records = [Spectrum(flux_d[0], DESI, ivar_d[0]), Spectrum(flux_s[0], SDSS, ivar_s[0]),
               Spectrum(flux_d[1], DESI, ivar_d[1])]
    np.testing.assert_allclose(embedder.embed_spectrum(records, batch_size=2), expected, rtol=1e-4, atol=1e-5)


def test_bad_input_names_the_field(spectrum_model):
    embedder, _ = spectrum_model
    flux, ivar = spectra(DESI, 2)
    with pytest.raises(InvalidDataError, match="spectrum_ivar"):
        embedder.embed_spectrum(flux, ivar[:, :-1], DESI)
    with pytest.raises(InvalidDataError, match="spectrum_lambda"):
        embedder.embed_spectrum(flux, ivar, DESI[:-1])
    with pytest.raises(InvalidDataError, match="spectrum_lambda.*increasing"):
        embedder.embed_spectrum(flux, ivar, DESI[::-1].copy())
    with pytest.raises(InvalidDataError, match="spectrum_lambda"):
        embedder.embed_spectrum(flux, ivar, np.tile(DESI, (3, 1)))
    with pytest.raises(InvalidDataError, match="spectrum_lambda.*required"):
        embedder.embed_spectrum(flux, ivar)
    inner = np.tile(DESI, (2, 1))
    inner[1, 100:110] = -1  # padding only ever sits at the end
    with pytest.raises(InvalidDataError, match="object #1 of the input, field 'spectrum_lambda'"):
        embedder.embed_spectrum(flux, ivar, inner, batch_size=1)  # named by its place in the input,
    with pytest.raises(InvalidDataError, match="object b, field 'spectrum_lambda'"):  # or by its id
        embedder.embed_spectrum(flux, ivar, inner, batch_size=1, object_ids=["a", "b"], source="q.fits")
    with pytest.raises(InvalidDataError, match="spectrum_mask"):
        embedder.embed_spectrum(flux, ivar, DESI, mask=np.ones((2, 5), bool))


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    torch.manual_seed(0)
    image_cfg = ImageEncoderConfig(arch="small_cnn", widths=(8, 16, 16, 32), in_channels=3)
    spec_cfg = SpectrumTransformerConfig.for_preprocess(PRE, dim=32, depth=1, num_heads=4)
    model = AlignedModel(build_image_encoder(image_cfg), SpectrumTransformer(spec_cfg), embed_dim=8,
                         projection_hidden=16,
                         image_config={"model_type": "image_encoder", "model": image_cfg.to_dict()},
                         spectrum_config={"model_type": "spectrum_transformer", "model": spec_cfg.to_dict()})
    image_pre = PreprocessConfig(mode="arcsinh", crop_size=24)
    with torch.no_grad():  # give the heads' standardisation real statistics, as training would
        model.train()
        x = preprocess(torch.randn(32, 3, 32, 32) * 0.1, image_pre, ("g", "r", "z"))
        model.image_head(model.image_encoder(x))
        flux, ivar = spectra(DESI, 32)
        model.spectrum_head(model.spectrum_encoder(prepare_batch(flux, ivar, None, DESI, PRE)))
    model.eval()
    path = export_aligned_model(model, {"model_type": "image_encoder", "preprocessing": image_pre.to_dict(),
                                        "bands": ["g", "r", "z"]},
                                {"preprocessing": PRE.to_dict()}, tmp_path_factory.mktemp("aligned") / "model")
    return path, model, image_pre


def test_aligned_embedder_embeds_both_modalities_into_one_space(aligned):
    path, model, image_pre = aligned
    embedder = astroembed.load(path, precision="32-true")
    assert embedder.modality == "aligned" and embedder.modalities == ("image", "spectrum")
    images = np.random.default_rng(0).normal(0, 0.1, (4, 3, 32, 32)).astype(np.float32)
    flux, ivar = spectra(DESI, 3)
    a, b = embedder.embed(images), embedder.embed_spectrum(flux, ivar, DESI)
    with torch.no_grad():
        ref_a = torch.nn.functional.normalize(
            model.image_head(model.image_encoder(preprocess(torch.from_numpy(images), image_pre, ("g", "r", "z")))))
        ref_b = torch.nn.functional.normalize(
            model.spectrum_head(model.spectrum_encoder(prepare_batch(flux, ivar, None, DESI, PRE))))
    np.testing.assert_allclose(a, ref_a.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, ref_b.numpy(), rtol=1e-5, atol=1e-6)
    assert a.shape == (4, 8) and b.shape == (3, 8) and a.dtype == b.dtype == np.float32
    sim = embedder.similarity(a, b)
    assert sim.shape == (4, 3)
    np.testing.assert_allclose(sim, a @ b.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embedder.similarity(3 * a, b), sim, rtol=1e-5, atol=1e-6)  # scale-free
    with pytest.raises(ValueError, match="one space"):
        embedder.similarity(a, np.zeros((3, 5)))


def test_aligned_export_loads_through_the_registry_in_a_fresh_process(aligned):
    # load_model alone (no import of the CLIP code) must find the "aligned" builder.
    code = ("import sys; from astroembed.models.io import load_model; m, c = load_model(sys.argv[1]); "
            "print(type(m).__name__, c['modalities'], m.embed_dim)")
    out = subprocess.run([sys.executable, "-c", code, str(aligned[0])], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "AlignedModel ['image', 'spectrum'] 8"
