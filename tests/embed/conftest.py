"""Shared inputs of the catalogue-embedding tests: a small multi-tile survey, two tiny image models, a folder
of colour cutouts with an RGB model, and a reference embedding run (one torch thread, so other runs can be
compared to it bit for bit)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from astroembed.data.mmu import write_survey
from astroembed.data.records import Galaxy, Image, Photometry
from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.models.io import save_model
from astroembed.preprocess.image import PreprocessConfig

N_GALAXIES = 120
NO_IMAGE_EVERY = 17  # every 17th object has photometry only: it must be skipped and counted
BANDS = ("g", "r", "z")


def survey_galaxies(n: int = N_GALAXIES, size: int = 32, seed: int = 0) -> list[Galaxy]:
    """Gaussian blobs spread over ~8 x 6 degrees, i.e. several nside-16 HEALPix tiles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    out = []
    for i in range(n):
        ra, dec = float(rng.uniform(150, 158)), float(rng.uniform(0, 6))
        if i % NO_IMAGE_EVERY == 5:
            out.append(Galaxy(f"obj-{i:04d}", ra, dec,
                              photometry=Photometry(BANDS, rng.uniform(1, 2, 3).astype(np.float32))))
            continue
        radius = rng.uniform(1.5, 5)
        profile = np.exp(-0.5 * (xx ** 2 + yy ** 2) / radius ** 2)
        flux = rng.uniform(0.5, 2, (3, 1, 1)) * profile + rng.normal(0, 0.02, (3, size, size))
        out.append(Galaxy(f"obj-{i:04d}", ra, dec,
                          image=Image(flux.astype(np.float32), BANDS, psf_fwhm=[1.3, 1.2, 1.1],
                                      pixel_scale=0.262)))
    return out


def save_small_cnn(directory: Path, seed: int, crop_size: int = 28) -> Path:
    """A randomly initialised small_cnn exported with what astroembed.inference.load reads."""
    torch.manual_seed(seed)
    cfg = ImageEncoderConfig(arch="small_cnn", in_channels=3, image_size=crop_size, widths=(8, 16, 16, 32))
    encoder = build_image_encoder(cfg)
    return save_model(encoder, {
        "model_type": "image_encoder", "modality": "image", "model": cfg.to_dict(),
        "preprocessing": PreprocessConfig(crop_size=crop_size).to_dict(), "bands": list(BANDS),
        "embed_dim": int(encoder.embed_dim)}, directory)


N_PER_CLASS = 24  # images per class of write_image_folder


def write_image_folder(root, sizes=(48,)):
    """Two classes of 8-bit PNG cutouts: reddish discs (spirals) and bluish ones (non_spirals), with noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, (name, colour) in enumerate((("non_spirals", (60, 90, 200)), ("spirals", (210, 80, 50)))):
        (root / name).mkdir(parents=True)
        for i in range(N_PER_CLASS):
            side = sizes[i % len(sizes)]
            yy, xx = np.mgrid[:side, :side] - side / 2
            disc = np.exp(-(xx ** 2 + yy ** 2) / (2 * (side / 8) ** 2))[..., None]
            pixels = disc * np.array(colour) * rng.uniform(0.6, 1.0) + rng.normal(10, 4, (side, side, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name / f"{1000 * c + i}.png")
    return root


def save_rgb_cnn(directory, seed=0):
    """A randomly initialised small CNN for 8-bit colour cutouts, framed like a model pretrained on a folder."""
    torch.manual_seed(seed)
    cfg = ImageEncoderConfig(arch="small_cnn", in_channels=3, image_size=24, widths=(8, 16, 16, 32))
    pre = PreprocessConfig(mode="rgb", input_crop=32, input_size=32, crop_size=24)
    return save_model(build_image_encoder(cfg), {
        "model_type": "image_encoder", "modality": "image", "model": cfg.to_dict(), "preprocessing": pre.to_dict(),
        "bands": ["R", "G", "B"], "embed_dim": int(build_image_encoder(cfg).embed_dim)}, directory)

@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread in every test here: results can then be compared bit for bit with the reference
    run and with Dask workers (which also use one), and a busy 2-core machine does not slow the
    multi-threaded kernels' spin-waits down by an order of magnitude."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def embed_inputs(tmp_path_factory):
    """(survey folder, galaxies, model folder, other model folder)."""
    root = tmp_path_factory.mktemp("embed_inputs")
    galaxies = survey_galaxies()
    tiles = write_survey(galaxies, root / "survey", "blobs")
    assert len(tiles) >= 4, "the test survey should span several tiles"
    return (root / "survey" / "blobs" / "default", galaxies, save_small_cnn(root / "model_a", seed=1),
            save_small_cnn(root / "model_b", seed=2))


@pytest.fixture(scope="session")
def reference_run(embed_inputs, tmp_path_factory):
    """Output folder of an uninterrupted single-process run with one torch thread."""
    from astroembed.embed import EmbedConfig, embed_catalog

    data, _, model, _ = embed_inputs
    out = tmp_path_factory.mktemp("reference") / "emb"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(out), device="cpu", precision="32-true",
                                      batch_size=16),
                      progress=False)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="session")
def builtin_catalogue(tmp_path_factory):
    """(catalogue folder, model folder): `astroembed simulate` (40 galaxies of the built-in survey, 32x32
    cutouts) embedded by `astroembed embed` with a small CNN, as a user would run both commands."""
    from typer.testing import CliRunner

    from astroembed.cli import app

    root = tmp_path_factory.mktemp("builtin")
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--out", str(root / "survey"), "--n", "40", "--image-size", "32",
                                 "--workers", "1"])
    assert result.exit_code == 0, result.output
    model = save_small_cnn(root / "model", seed=3)
    data = next((root / "survey").glob("*/default"))
    result = runner.invoke(app, ["embed", "--model", str(model), "--data", str(data), "--out", str(root / "emb"),
                                 "--device", "cpu", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    return root / "emb", model
