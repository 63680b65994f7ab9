"""Spectrum pretraining end to end: masked modelling trains and exports; the export embeds spectra as
stored (MMU -1 padding, any grid) exactly like the model applied to prepare_spectra of the records;
real SDSS and DESI spectra embed; a run killed with SIGKILL resumes."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import astroembed
from astroembed.preprocess.spectrum import SpectrumPreprocessConfig, prepare_spectra
from astroembed.data.dataset import MMUDataset
from astroembed.data.mmu import write_survey
from astroembed.models.io import load_model
from astroembed.config import load_yaml_config
from astroembed.train.spectrum import SpectrumPretrainConfig, pretrain_spectrum

TINY = {"preprocess": {"wave_step": 10.0},  # 623 pixels, 62 patches
        "model": {"dim": 32, "depth": 1, "num_heads": 4},
        "run": {"batch_size": 8, "num_workers": 0, "progress": False, "warmup_steps": 2,
                "checkpoint_every_n_steps": 2, "log_every_n_steps": 1}}


def tiny_config(data, out, **run) -> SpectrumPretrainConfig:
    cfg = {**TINY, "data": str(data), "out": str(out), "run": {**TINY["run"], **run}}
    return load_yaml_config(SpectrumPretrainConfig, None, cfg)


def metrics(run: Path, attempt: int = -1) -> list[dict]:
    versions = sorted((run / "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    if not versions or not (versions[attempt] / "metrics.csv").exists():
        return []
    with open(versions[attempt] / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A paired survey (some spectra padded with -1) and a spectrum model pretrained 4 steps on it."""
    from tests.train.conftest import make_paired_galaxies

    tmp = tmp_path_factory.mktemp("spectrum")
    galaxies = make_paired_galaxies(n=24)
    write_survey(galaxies, tmp / "survey", "paired")
    data = tmp / "survey" / "paired" / "default"
    torch.set_num_threads(1)
    model_dir = pretrain_spectrum(tiny_config(data, tmp / "run", max_steps=4))
    return data, galaxies, tmp / "run", model_dir


def test_trains_with_finite_loss_and_exports_a_loadable_model(trained):
    data, _, run, model_dir = trained
    losses = [float(r["train_loss"]) for r in metrics(run) if r.get("train_loss")]
    assert len(losses) == 4 and np.all(np.isfinite(losses)) and losses[0] > 0
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "spectrum_transformer" and config["modality"] == "spectrum"
    assert config["model"]["pooling"] == "bins" and config["embed_dim"] == 32 * config["model"]["n_bins"]
    pre = SpectrumPreprocessConfig(wave_step=10.0)
    assert config["preprocessing"] == pre.to_dict()
    assert config["model"]["n_patches"] == pre.n_patches == 62
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["n_patches"] == 62 and saved["model"]["pooling"] == "bins" and saved["mask_fraction"] == 0.3
    reloaded = load_yaml_config(SpectrumPretrainConfig, run / "config.yaml")
    assert reloaded.model.to_dict() == config["model"] and reloaded.preprocess == pre


LINE_FOREST = np.linspace(3800.0, 9600.0, 24)  # observed-frame line centres (A) of the synthetic forest


def line_forest_galaxies(n: int, seed: int):
    """Blob galaxies whose spectra are a flat continuum plus 24 broad emission lines at (nearly) fixed
    wavelengths, their strength varying from object to object.

    A straight line across a hidden chunk misses the lines in it; a model that has learnt where the lines
    sit and how strong they are fills the chunk in far better.
    """
    from astroembed.data.records import Spectrum
    from tests.conftest import make_blob_galaxies

    rng = np.random.default_rng(seed + 100)
    lam = np.arange(3600.0, 9824.0 + 1e-6, 4.0)
    galaxies = make_blob_galaxies(n=n, seed=seed)
    sigma = 0.2
    for g in galaxies:
        centres = LINE_FOREST * (1 + rng.uniform(0.0, 0.005))
        lines = 12.0 * np.exp(-0.5 * ((lam[:, None] - centres) / 15.0) ** 2).sum(1)
        flux = 4.0 + rng.uniform(0.5, 1.5) * lines + rng.normal(0, sigma, lam.size)
        g.spectrum = Spectrum(flux.astype(np.float32), lam, ivar=np.full(lam.size, 1 / sigma**2, np.float32))
    return galaxies


def test_masked_modelling_learns_to_beat_linear_interpolation_on_held_out_spectra(tmp_path):
    """60 steps (about 10 s on one CPU thread): the loss falls and, on spectra the model never saw, its
    reconstruction of hidden chunks beats linear interpolation across them (ratio ~0.67), where the
    untrained network is far worse than interpolation."""
    from astroembed.evaluate.reconstruction import reconstruction_report
    from astroembed.models.io import build_from_config, load_state

    write_survey(line_forest_galaxies(48, seed=0), tmp_path / "survey", "forest")
    model_dir = pretrain_spectrum(tiny_config(tmp_path / "survey" / "forest" / "default", tmp_path / "run",
                                              max_steps=60, learning_rate=3e-3))
    losses = np.array([float(r["train_loss"]) for r in metrics(tmp_path / "run") if r.get("train_loss")])
    assert len(losses) == 60 and losses[-10:].mean() < 0.5 * losses[:10].mean(), losses
    model, config = load_model(model_dir)
    pre = SpectrumPreprocessConfig.from_dict(config["preprocessing"])
    held_out = prepare_spectra([g.spectrum for g in line_forest_galaxies(32, seed=5)], pre)
    report = reconstruction_report(model, held_out, mask_fraction=0.3, chunk_len=6, seed=0)
    assert report["ratio"] < 0.85, report
    torch.manual_seed(0)
    untrained = build_from_config(load_state(model_dir)[0])
    assert reconstruction_report(untrained, held_out, mask_fraction=0.3, chunk_len=6, seed=0)["ratio"] > 1.5


def test_embed_spectrum_on_stored_padded_arrays_matches_model_on_prepared_records(trained):
    data, galaxies, _, model_dir = trained
    dataset = MMUDataset(data, modalities=("spectrum",))
    rows = [dataset[i] for i in range(len(dataset))]
    flux, ivar, lam, mask = (np.stack([r[k] for r in rows]) for k in
                             ("spectrum_flux", "spectrum_ivar", "spectrum_lambda", "spectrum_mask"))
    padded = (lam == -1).any(1)
    assert padded.any() and not padded.all()  # the survey mixes lengths: padding is exercised
    model = astroembed.load(model_dir, precision="32-true")  # compared with the fp32 model to 1e-4
    got = model.embed_spectrum(flux, ivar, lam, mask=mask, batch_size=10)
    # Independent path: the written records, each on its own unpadded grid, through prepare_spectra.
    encoder, config = load_model(model_dir)
    pre = SpectrumPreprocessConfig.from_dict(config["preprocessing"])
    records = [dataset.survey.galaxy(int(r["index"])).spectrum for r in rows]
    with torch.no_grad():
        expected = encoder(prepare_spectra(records, pre)).numpy()
    assert got.shape == (len(rows), 32 * 16) and got.dtype == np.float32  # dim 32, 16 bins (the stage default)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.ptp(got, axis=0).max() > 0
    # the stage standardised the exported model's output on its training spectra (here: all of them)
    varying = got.std(0) > 1e-3
    np.testing.assert_allclose(got.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(got[:, varying].std(0, ddof=1), 1.0, rtol=1e-3)
    np.testing.assert_allclose(model.embed_spectrum(records), expected, rtol=1e-4, atol=1e-5)


def test_real_sdss_and_desi_spectra_embed(trained, shared_data):
    from astroembed.data.readers.desi import read_desi_coadd
    from astroembed.data.readers.sdss import read_sdss_spectrum

    model = astroembed.load(trained[3])
    sdss = [g for p in sorted((shared_data / "spectra" / "sdss").glob("spec-*.fits")) for g in read_sdss_spectrum(p)]
    desi = [g for p in sorted((shared_data / "spectra" / "desi").glob("coadd-*.fits")) for g in read_desi_coadd(p)]
    if not sdss or not desi:
        pytest.skip("SDSS or DESI spectra missing from the shared data")
    for records in (sdss, desi):
        vectors = model.embed_spectrum(records)  # Galaxy records, each spectrum on its own grid
        assert vectors.shape == (len(records), 32 * 16) and np.isfinite(vectors).all()
    # The arrays of one SDSS spectrum (log-lambda grid) give the same vector as its record.
    sp = sdss[0].spectrum
    one = model.embed_spectrum(sp.flux, sp.ivar, sp.wavelength, mask=sp.mask)
    np.testing.assert_allclose(one, model.embed_spectrum([sp]), rtol=1e-5, atol=1e-6)


def _cli(args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "astroembed", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_resumes_from_last_checkpoint(trained, tmp_path):
    data = trained[0]
    run = tmp_path / "run"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "run": {**TINY["run"], "num_workers": 1}}))
    args = ["pretrain", "spectrum", "--data", data, "--out", run, "--config", cfg, "--max-steps", 40]
    proc = _cli(args)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and not (last.exists() and any(int(r["step"]) >= 5 for r in metrics(run))):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists(), "no checkpoint was written before the kill"
    assert not (run / "model" / "model.safetensors").exists()
    resumed_from = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < resumed_from < 40
    out = _cli(args).communicate(timeout=120)[0]
    assert (run / "model" / "model.safetensors").exists(), out
    first = [int(r["step"]) for r in metrics(run, 0) if r.get("train_loss")]
    second = [int(r["step"]) for r in metrics(run, 1) if r.get("train_loss")]
    assert first and min(first) == 0
    assert min(second) == resumed_from and max(second) == 39  # continued, not restarted
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 40
    vectors = astroembed.load(run).embed_spectrum([g.spectrum for g in trained[1][:3]])
    assert vectors.shape == (3, 32 * 16) and np.isfinite(vectors).all()


def test_prepared_cache_gives_the_step_the_same_input_as_preparing_stored_spectra(trained):
    """The in-memory PreparedSpectra batch (padded rows included) is patched into exactly the input the step
    builds from stored spectra, so caching changes the speed of training, not what it learns."""
    from astroembed.train.spectrum import PreparedSpectra, SpectrumMaskedModelling

    data, _, _, _ = trained
    config = tiny_config(data, "unused")
    dataset = MMUDataset(data, modalities=("spectrum",))
    networks = SpectrumMaskedModelling(config)
    stored = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    cached = torch.utils.data.default_collate(list(PreparedSpectra(dataset, config.preprocess, batch_size=5)))
    expected, got = networks.inputs(stored), networks.inputs(cached)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)


def test_training_with_and_without_the_prepared_cache_gives_the_same_losses(trained, tmp_path):
    data = trained[0]
    losses = []
    for name, gib in (("cached", 2.0), ("per_step", 0.0)):
        cfg = tiny_config(data, tmp_path / name, max_steps=3)
        cfg.prepared_cache_gib = gib
        torch.set_num_threads(1)
        pretrain_spectrum(cfg)
        losses.append([float(r["train_loss"]) for r in metrics(tmp_path / name) if r.get("train_loss")])
    assert len(losses[0]) == 3
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
