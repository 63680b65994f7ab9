"""Image pretraining end to end: every method trains and exports; the export embeds raw cutouts exactly
as the training preprocessing does; a run killed with SIGKILL resumes; DDP runs with 2 CPU processes."""

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import astroembed.inference as inference
from astroembed.preprocess.image import preprocess
from astroembed.models.io import load_model
from astroembed.config import load_yaml_config
from astroembed.train.image import ImagePretrainConfig, pretrain_image

TINY = {"encoder": {"arch": "small_cnn", "widths": [8, 16, 16, 32]},
        "augment": {"crop_size": 24, "max_shift": 2.0},
        "projection_dim": 16, "projection_hidden": 32, "queue_size": 64,
        "run": {"batch_size": 8, "num_workers": 0, "progress": False, "warmup_steps": 2,
                "checkpoint_every_n_steps": 2, "log_every_n_steps": 1}}


def tiny_config(data, out, **overrides) -> ImagePretrainConfig:
    import copy

    cfg = copy.deepcopy(TINY)
    cfg.update(data=str(data), out=str(out))
    for key, value in overrides.items():
        target = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    return load_yaml_config(ImagePretrainConfig, None, cfg)


def metrics(run: Path, attempt: int = -1) -> list[dict]:
    """Rows of the CSV log of one attempt (each run of the command logs into a new version_K)."""
    versions = sorted((run / "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    if not versions or not (versions[attempt] / "metrics.csv").exists():
        return []
    with open(versions[attempt] / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("method", ["simclr", "moco", "byol"])
def test_each_method_trains_and_exports(blob_survey, tmp_path, method):
    path, galaxies = blob_survey
    model_dir = pretrain_image(tiny_config(path, tmp_path / method, method=method, **{"run.max_steps": 4}))
    losses = [float(r["train_loss"]) for r in metrics(tmp_path / method) if r.get("train_loss")]
    assert len(losses) == 4 and np.all(np.isfinite(losses))
    model = inference.load(model_dir)
    flux = np.stack([g.image.flux for g in galaxies[:5]])
    vectors = model.embed(flux)
    assert vectors.shape == (5, model.embed_dim) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all() and np.ptp(vectors, axis=0).max() > 0


@pytest.mark.parametrize("method", ["simclr", "moco", "byol"])
def test_each_method_learns_blob_physics_that_a_random_encoder_does_not_capture(tmp_path, method):
    """The loss falls, and k-NN redshift on unseen galaxies beats the same network at init.

    The blobs' size and colour follow their redshift. A random CNN already sees some of it (R^2 ~0.72 on
    this held-out set); 120 steps (about 20 s on one CPU thread) lift it to ~0.93 (SimCLR), ~0.92 (MoCo),
    ~0.97 (BYOL). An encoder that learns nothing, or collapses, stays at or below the random one.
    """
    from tests.conftest import make_blob_galaxies

    from astroembed.data.mmu import write_survey
    from astroembed.evaluate.redshift import knn_redshift_report
    from astroembed.models.io import build_from_config, load_state, save_model

    write_survey(make_blob_galaxies(n=96, seed=0), tmp_path / "survey", "blobs")
    model_dir = pretrain_image(tiny_config(tmp_path / "survey" / "blobs" / "default", tmp_path / "run", method=method,
                                           **{"run.max_steps": 120, "run.learning_rate": 3e-3}))
    losses = np.array([float(r["train_loss"]) for r in metrics(tmp_path / "run") if r.get("train_loss")])
    assert len(losses) == 120 and np.isfinite(losses).all()
    if method != "moco":  # MoCo's queue of negatives fills over the first steps, so its loss rises at first
        assert losses[-10:].mean() < 0.75 * losses[:10].mean(), losses
    config, _ = load_state(model_dir)
    torch.manual_seed(0)
    random_dir = save_model(build_from_config(config), config, tmp_path / "random_init")
    unseen = make_blob_galaxies(n=200, seed=1)
    flux = np.stack([g.image.flux for g in unseen])
    z = np.array([g.labels["redshift"] for g in unseen])
    r2 = {}
    for name, directory in (("trained", model_dir), ("random", random_dir)):
        vectors = inference.load(directory).embed(flux)
        r2[name] = knn_redshift_report(vectors[:120], z[:120], vectors[120:], z[120:], k=8)["r2"]
    assert r2["trained"] > r2["random"] + 0.1 and r2["trained"] > 0.85, r2


def test_rerun_resumes_with_the_restricted_unpickler_and_refuses_code_in_a_checkpoint(blob_survey, tmp_path):
    path, _ = blob_survey
    run = tmp_path / "run"
    pretrain_image(tiny_config(path, run, **{"run.max_steps": 2}))
    pretrain_image(tiny_config(path, run, **{"run.max_steps": 4}))
    assert [int(r["step"]) for r in metrics(run) if r.get("train_loss")] == [2, 3]  # continued, not restarted
    # A checkpoint that someone replaced with one that runs code on unpickling is refused, not executed.
    last = run / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)  # our own file, just written
    marker = tmp_path / "code-ran"
    checkpoint["callbacks"]["payload"] = _RunsCodeWhenUnpickled(str(marker))
    torch.save(checkpoint, last)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        pretrain_image(tiny_config(path, run, **{"run.max_steps": 6}))
    assert not marker.exists()


class _RunsCodeWhenUnpickled:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path(self.path).touch, ())


def test_export_embeds_raw_flux_like_the_training_preprocessing(blob_survey, tmp_path):
    path, galaxies = blob_survey
    model_dir = pretrain_image(tiny_config(path, tmp_path / "run", **{"run.max_steps": 2}))
    encoder, config = load_model(model_dir)
    cfg = load_yaml_config(ImagePretrainConfig, tmp_path / "run" / "config.yaml")
    flux = torch.from_numpy(np.stack([g.image.flux for g in galaxies[:6]]))
    # Independent path: centre crop + the LS arcsinh stretch, straight from the training config.
    expected = encoder(preprocess(flux, cfg.preprocess, ("g", "r", "z"))).detach().numpy()
    got = inference.load(model_dir, precision="32-true").embed(flux.numpy())  # exact: fp32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    single = inference.load(model_dir, precision="32-true").embed(flux[0].numpy())
    np.testing.assert_allclose(single, expected[:1], rtol=1e-5, atol=1e-6)
    assert config["preprocessing"]["crop_size"] == 24 and config["bands"] == ["g", "r", "z"]


def test_embed_rejects_wrong_band_count_with_a_clear_error(blob_survey, tmp_path):
    path, _ = blob_survey
    model = inference.load(pretrain_image(tiny_config(path, tmp_path / "run", **{"run.max_steps": 1})))
    with pytest.raises(ValueError, match="expects 3 bands"):
        model.embed(np.zeros((2, 5, 32, 32), np.float32))
    with pytest.raises(ValueError, match="image_array"):
        model.embed(np.zeros((32, 32), np.float32))


def test_rgb_jpeg_folder_trains_and_embeds_uint8(tmp_path):
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    for cls in ("spirals", "non_spirals"):
        (tmp_path / "jpg" / cls).mkdir(parents=True)
        for i in range(10):
            PILImage.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(
                tmp_path / "jpg" / cls / f"{cls}{i}.jpg")
    model_dir = pretrain_image(tiny_config(tmp_path / "jpg", tmp_path / "run", **{"run.max_steps": 2}))
    model = inference.load(model_dir)
    assert model.preprocess_config.mode == "rgb" and model.preprocess_config.input_crop == 40
    vectors = model.embed(rng.integers(0, 255, (3, 80, 80, 3), dtype=np.uint8))
    assert vectors.shape == (3, model.embed_dim)


def _cli(args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "astroembed", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _write_config(tmp_path, **run) -> Path:
    cfg = {**TINY, "run": {**TINY["run"], **run}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_resumes_from_last_checkpoint(blob_survey, tmp_path):
    path, _ = blob_survey
    run = tmp_path / "run"
    cfg = _write_config(tmp_path, num_workers=1)
    args = ["pretrain", "image", "--data", path, "--out", run, "--config", cfg, "--max-steps", 30]
    proc = _cli(args)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while time.time() < deadline and not (last.exists() and any(int(r["step"]) >= 5 for r in metrics(run))):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists(), "no checkpoint was written before the kill"
    assert not (run / "model" / "model.safetensors").exists()
    resumed_from = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < resumed_from < 30
    out = _cli(args).communicate(timeout=300)[0]
    assert (run / "model" / "model.safetensors").exists(), out
    first = [int(r["step"]) for r in metrics(run, 0) if r.get("train_loss")]
    second = [int(r["step"]) for r in metrics(run, 1) if r.get("train_loss")]
    assert first and min(first) == 0
    # The second attempt continued the step count from the checkpoint instead of starting at 0.
    assert min(second) == resumed_from and max(second) == 29
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 30


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(blob_survey, tmp_path):
    path, _ = blob_survey
    run = tmp_path / "ddp"
    cfg = _write_config(tmp_path, num_workers=0)
    proc = _cli(["pretrain", "image", "--data", path, "--out", run, "--config", cfg, "--max-steps", 3,
                 "--devices", 2, "--strategy", "ddp", "--device", "cpu"])
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert (run / "model" / "model.safetensors").exists()
    training = json.loads((run / "model" / "config.json").read_text())["training"]
    assert training["world_size"] == 2, training  # two processes trained it
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
