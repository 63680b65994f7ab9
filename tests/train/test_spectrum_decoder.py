"""The spectrum decoder stage: it learns spectra from shared-space vectors, trains on a frozen aligned model,
is found by ``load(model).predict_spectrum`` and written by ``astroembed predict-spectrum``."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import astroembed
from astroembed.cli import app
from astroembed.data.mmu import write_survey
from astroembed.data.records import InvalidDataError
from astroembed.evaluate.predicted_spectra import read_predicted_spectra
from astroembed.evaluate.spectrum_prediction import chi2_per_dof
from astroembed.train.spectrum_decoder import SpectrumDecoderConfig, fit_decoder, train_spectrum_decoder

GRID = np.arange(3600.0, 9824.0, 20.0)


def test_fit_decoder_learns_spectra_that_the_vectors_determine():
    # Galaxies whose spectrum (a smooth break and two broad lines at 1 + z) is a function of a 2-d code of z:
    # on held-out galaxies the decoder must beat its own starting point, the training mean spectrum, by far.
    rng = np.random.default_rng(0)
    z = rng.uniform(0.02, 0.4, 240)
    rest = GRID[None] / (1 + z[:, None])
    clean = 0.75 + 0.25 * np.tanh((rest - 4000) / 100) + sum(np.exp(-0.5 * ((rest - c) / 40.0) ** 2)
                                                             for c in (3728, 6564))
    sigma = 0.05
    table = {"vector": np.stack([np.cos(4 * z), np.sin(4 * z)], 1).astype(np.float32),
             "flux": (clean + rng.normal(0, sigma, clean.shape)).astype(np.float32),
             "ivar": np.full(clean.shape, 1 / sigma ** 2, np.float32), "valid": np.ones(clean.shape, bool),
             "log10_scale": (0.5 + z).astype(np.float32)}
    train = {k: v[:200] for k, v in table.items()}
    config = SpectrumDecoderConfig(hidden=64, epochs=120, patience=120, batch_size=50, learning_rate=1e-2,
                                   dropout=0.0, weight_decay=1e-4)
    decoder, history = fit_decoder(train, config)
    with torch.no_grad():
        shape, log10_scale = decoder(torch.as_tensor(table["vector"][200:]))
    test = slice(200, None)
    mean = np.broadcast_to(train["flux"].mean(0), shape.shape)
    chi2 = np.median(chi2_per_dof(shape.numpy(), table["flux"][test], table["ivar"][test], table["valid"][test]))
    chi2_mean = np.median(chi2_per_dof(mean, table["flux"][test], table["ivar"][test], table["valid"][test]))
    assert chi2 < 0.5 * chi2_mean  # the mean spectrum: chi2/dof 12; the noise alone: 1; this run: 4.8
    assert np.sqrt(np.mean((log10_scale.numpy() - table["log10_scale"][test]) ** 2)) < 0.05
    assert history["val"][history["best_epoch"]] == min(history["val"])


def tiny_aligned_model(folder):
    """A randomly initialised aligned model (small CNN + 1-block transformer on a 10 A grid), exported."""
    from astroembed.models.clip_model import AlignedModel
    from astroembed.models.io import build_from_config
    from astroembed.models.image_encoder import ImageEncoderConfig
    from astroembed.models.spectrum_transformer import SpectrumTransformerConfig
    from astroembed.preprocess.image import PreprocessConfig
    from astroembed.preprocess.spectrum import SpectrumPreprocessConfig
    from astroembed.train.clip import export_aligned_model

    torch.manual_seed(0)
    pre = SpectrumPreprocessConfig(wave_step=10.0)
    image = {"model_type": "image_encoder",
             "model": ImageEncoderConfig(arch="small_cnn", widths=(8, 16, 16, 32), image_size=32).to_dict()}
    spectrum = {"model_type": "spectrum_transformer",
                "model": SpectrumTransformerConfig.for_preprocess(pre, dim=32, depth=1, num_heads=4).to_dict()}
    model = AlignedModel(build_from_config(image), build_from_config(spectrum), embed_dim=16, projection_hidden=32,
                         image_config=image, spectrum_config=spectrum)
    return export_aligned_model(model, {"preprocessing": PreprocessConfig().to_dict(), "bands": ["g", "r", "z"]},
                                {"preprocessing": pre.to_dict()}, folder)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.train.conftest import make_paired_galaxies

    tmp = tmp_path_factory.mktemp("decoder")
    galaxies = make_paired_galaxies(n=24)
    write_survey(galaxies, tmp / "survey", "paired")
    data = tmp / "survey" / "paired" / "default"
    model = tiny_aligned_model(tmp / "clip" / "model")
    config = SpectrumDecoderConfig(model=str(model), data=str(data), out=str(tmp / "run"), hidden=16, epochs=3,
                                   train_indices=list(range(20)))
    folder = train_spectrum_decoder(config)
    return model, data, galaxies, folder, config


def test_the_decoder_is_saved_in_the_model_and_predict_spectrum_finds_it(trained):
    model, _, galaxies, folder, config = trained
    assert folder == model / "spectrum_decoder" and (config.out and (folder / "model.safetensors").is_file())
    embedder = astroembed.load(model)
    images = np.stack([g.image.flux for g in galaxies[:5]])
    grid, flux = embedder.predict_spectrum(images=images)
    assert np.array_equal(grid, np.arange(3600.0, 9824.0 + 1e-6, 10.0)) and flux.shape == (5, grid.size)
    # an independent forward pass: the decoder on the model's image vectors, times the predicted scale
    decoder, _ = astroembed.models.spectrum_decoder.load_decoder(model)
    with torch.no_grad():
        shape, log10_scale = decoder(torch.from_numpy(embedder.embed(images)))
    assert np.allclose(flux, (shape * 10 ** log10_scale[:, None]).numpy(), rtol=1e-5, atol=1e-6)
    _, normalised = embedder.predict_spectrum(images=images, normalised=True)
    assert np.allclose(normalised, shape.numpy(), atol=1e-6)


def test_predict_spectrum_refuses_what_it_cannot_do(trained):
    model = astroembed.load(trained[0])
    with pytest.raises(InvalidDataError, match="no photometry encoder") as info:
        model.predict_spectrum(photometry={"flux": np.ones((1, 5)), "ivar": np.ones((1, 5)), "bands": "ugriz"})
    assert info.value.field == "photometry"
    with pytest.raises(InvalidDataError, match="give images, photometry or both"):
        model.predict_spectrum()
    with pytest.raises(InvalidDataError, match=r"finite \(N, 16\) vectors") as info:
        model.decode_spectrum(np.ones((2, 8)))
    assert info.value.field == "vectors"


def test_a_non_aligned_model_cannot_train_a_decoder(trained, tmp_path):
    from astroembed.models.io import load_state, save_model
    from astroembed.models.spectrum_transformer import build_spectrum_transformer

    config, _ = load_state(trained[0])
    spectrum = save_model(build_spectrum_transformer(config["model"]["spectrum"]["model"]),
                          {**config["model"]["spectrum"], "preprocessing": config["preprocessing"]["spectrum"],
                           "embed_dim": 64}, tmp_path / "spectrum")
    with pytest.raises(InvalidDataError, match="aligned \\(CLIP\\) model"):
        train_spectrum_decoder(SpectrumDecoderConfig(model=str(spectrum), data=str(trained[1]),
                                                     out=str(tmp_path / "run")))


@pytest.mark.parametrize("suffix", [".parquet", ".fits"])
def test_predict_spectrum_command_writes_ids_grid_and_flux(trained, tmp_path, suffix):
    model, data, galaxies, _, _ = trained
    out = tmp_path / f"predicted{suffix}"
    result = CliRunner().invoke(app, ["predict-spectrum", "--model", str(model), "--data", str(data),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    ids, grid, flux = read_predicted_spectra(out)
    assert sorted(ids) == sorted(g.object_id for g in galaxies)
    order = {g.object_id: i for i, g in enumerate(galaxies)}
    images = np.stack([galaxies[order[i]].image.flux for i in ids])
    expected_grid, expected = astroembed.load(model).predict_spectrum(images=images)
    assert np.allclose(grid, expected_grid)
    assert np.allclose(flux, expected, rtol=1e-4, atol=1e-4)  # other batches: float32 round-off only
    bad = CliRunner().invoke(app, ["predict-spectrum", "--model", str(model), "--data", str(data),
                                   "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code != 0 and ".parquet or .fits" in bad.output


def test_the_main_job_figure_shows_seeded_galaxies_of_the_given_rows(trained, tmp_path):
    from astroembed.data.mmu import MMUSurvey
    from astroembed.evaluate.spectrum_prediction import write_prediction_figure

    model, data, _, _, _ = trained
    path, shown = write_prediction_figure(model, data, [20, 21, 22, 23], tmp_path / "fig.png", n=3, seed=1)
    assert path.read_bytes()[:4] == b"\x89PNG" and len(shown) == 3
    rows = np.sort(np.random.default_rng(1).choice([20, 21, 22, 23], size=3, replace=False))
    assert shown == [str(i) for i in MMUSurvey(data).object_ids[rows]]  # survey rows, in survey order
