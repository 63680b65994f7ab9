"""Tracebacks are for bugs: every command answers a user's mistake with one line naming what is wrong.

A battery of malformed inputs, tried as a new user would, through the real `astroembed` app (typer's
CliRunner, and a subprocess for the real stderr and --debug). Each case asserts: exit code 2, exactly one
line on stderr starting with ``error:``, no traceback, and that the line names the file / field at fault.
"""

import errno
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.cli.errors import EXIT_CODE, ReportingGroup, one_line
from astroembed.data.mmu import write_survey
from astroembed.embed import EmbedConfig, embed_catalog
from astroembed.search.catalog_search import build_index
from tests.conftest import make_blob_galaxies
from tests.embed.conftest import save_small_cnn

GPU = torch.cuda.is_available()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A small survey, a model, its embeddings and index, and the broken things a user may hand over."""
    root = tmp_path_factory.mktemp("cli_errors")
    write_survey(make_blob_galaxies(n=12), root / "survey", "blobs")
    survey = root / "survey" / "blobs" / "default"
    model = save_small_cnn(root / "model", seed=0)
    embed_catalog(EmbedConfig(model=str(model), data=str(survey), out=str(root / "emb"), device="cpu"),
                  progress=False)
    build_index([root / "emb"], root / "index")
    (root / "a_file").write_text("not a folder\n")
    (root / "bad.yaml").write_text("run: [unclosed\n")
    (root / "unknown_key.yaml").write_text("nonsense_key: 3\n")
    (root / "garbage.bin").write_bytes(bytes(range(256)) * 8)
    (root / "not_hdf5.hdf5").write_text("plain text, not HDF5\n")
    config = json.loads((model / "config.json").read_text())
    for name, edit in {"no_weights": None, "no_config": None, "no_embed_dim": "embed_dim", "bad_json": "json"}.items():
        folder = root / name
        folder.mkdir()
        if name in ("no_weights", "no_config"):
            shutil.copy(model / ("config.json" if name == "no_weights" else "model.safetensors"), folder)
            continue
        shutil.copy(model / "model.safetensors", folder)
        text = "{not json" if edit == "json" else json.dumps({k: v for k, v in config.items() if k != edit})
        (folder / "config.json").write_text(text)
    with h5py.File(root / "lambda_1d.hdf5", "w") as f:  # a spectrum column written without its pixel axis
        f["object_id"] = np.array([b"s1", b"s2"])
        f["ra"], f["dec"] = np.array([1.0, 2.0]), np.array([3.0, 4.0])
        f["spectrum_flux"] = np.ones((2, 5), np.float32)
        f["spectrum_ivar"] = np.ones((2, 5), np.float32)
        f["spectrum_lambda"] = np.array([4000.0, 4001.0])
    return root


def _run(root, *args):
    """Invoke the app with paths relative to ``root`` (messages then name them as the user typed them)."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return CliRunner().invoke(app, [str(a) for a in args])
    finally:
        os.chdir(cwd)


def assert_one_line(result, *names):
    assert result.exit_code == EXIT_CODE, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for name in names:
        assert name in lines[0], (name, lines[0])


SURVEY = "survey/blobs/default"
CASES = {
    # bad or missing input
    "info: missing path": (["info", "nowhere"], ["file nowhere", "no such file or folder"]),
    "info: not HDF5": (["info", "not_hdf5.hdf5"], ["not_hdf5.hdf5", "cannot be read as HDF5"]),
    "info: 1-D wavelengths": (["info", "lambda_1d.hdf5"], ["lambda_1d.hdf5", "field 'spectrum_lambda'", "(2,)"]),
    "convert: binary file": (["convert", "garbage.bin", "--out", "conv"],
                             ["garbage.bin", "binary file of unknown type"]),
    "convert: missing input": (["convert", "nowhere.fits", "--out", "conv"],
                               ["nowhere.fits", "no such file or folder"]),
    "convert: bad --if-exists": (["convert", "not_hdf5.hdf5", "--out", "conv", "--if-exists", "replace"],
                                 ["if_exists must be one of"]),
    "embed: missing data": (["embed", "--model", "model", "--data", "nowhere", "--out", "e", "--device", "cpu"],
                            ["nowhere"]),
    "index: missing embeddings": (["index", "--embeddings", "nowhere", "--out", "i"], ["nowhere"]),
    "search: missing index": (["search", "--index", "nowhere", "--id", "blob-0001"], ["nowhere", "manifest.json"]),
    "search: unknown id": (["search", "--index", "index", "--id", "nope"], ["object nope", "unknown object id"]),
    "search: unreadable query file": (["search", "--index", "index", "--file", "garbage.bin"], ["garbage.bin"]),
    "augment: missing data": (["augment", "--data", "nowhere", "--show", "grid.png"], ["nowhere"]),
    "pretrain image: missing data": (["pretrain", "image", "--data", "nowhere", "--out", "run", "--device", "cpu"],
                                     ["nowhere"]),
    "pretrain spectrum: no spectra": (["pretrain", "spectrum", "--data", SURVEY, "--out", "run", "--device", "cpu",
                                       "--batch-size", "4"], [SURVEY, "field 'spectrum_flux'"]),
    "pretrain clip: missing model": (["pretrain", "clip", "--image-model", "nowhere", "--spectrum-model", "model",
                                      "--data", SURVEY, "--out", "run", "--device", "cpu"], ["nowhere"]),
    # bad configs and option values
    "pretrain: config not YAML": (["pretrain", "image", "--data", SURVEY, "--out", "run", "--config", "bad.yaml"],
                                  ["bad.yaml", "not valid YAML", "line 1"]),
    "pretrain: config with an unknown key": (
        ["pretrain", "image", "--data", SURVEY, "--out", "run", "--config", "unknown_key.yaml"],
        ["unknown ImagePretrainConfig key(s) ['nonsense_key']"]),
    "pretrain: missing config": (["pretrain", "image", "--data", SURVEY, "--out", "run", "--config", "nowhere.yaml"],
                                 ["nowhere.yaml", "no shipped config of that name"]),
    "embed: unknown modality": (["embed", "--model", "model", "--data", SURVEY, "--out", "e4", "--modality", "sound"],
                                ["modality must be one of", "'sound'"]),
    "index: unknown kind": (["index", "--embeddings", "emb", "--out", "i2", "--kind", "lsh"], ["unknown kind 'lsh'"]),
    "search: k < 1": (["search", "--index", "index", "--id", "blob-0001", "--k", "0"], ["k must be", "got 0"]),
    # incomplete model folders
    "embed: model without weights": (["embed", "--model", "no_weights", "--data", SURVEY, "--out", "e1",
                                      "--device", "cpu"], ["no_weights/model.safetensors"]),
    "embed: model without config": (["embed", "--model", "no_config", "--data", SURVEY, "--out", "e5",
                                     "--device", "cpu"], ["no_config/config.json"]),
    "embed: config lacks a key": (["embed", "--model", "no_embed_dim", "--data", SURVEY, "--out", "e2",
                                   "--device", "cpu"], ["no_embed_dim/config.json", "field 'embed_dim'"]),
    "embed: config not JSON": (["embed", "--model", "bad_json", "--data", SURVEY, "--out", "e3", "--device", "cpu"],
                               ["bad_json/config.json", "not valid JSON"]),
    # an output path that is a file
    "simulate: --out is a file": (["simulate", "--out", "a_file", "--n", "3", "--workers", "1"],
                                  ["a_file", "part of this path is a file"]),
    "embed: --out is a file": (["embed", "--model", "model", "--data", SURVEY, "--out", "a_file", "--device", "cpu"],
                               ["a_file"]),
    "index: --out is a file": (["index", "--embeddings", "emb", "--out", "a_file"], ["a_file", "already exists"]),
    "augment: --show under a file": (["augment", "--data", SURVEY, "--show", "a_file/grid.png"], ["a_file"]),
    "pretrain image: --out is a file": (["pretrain", "image", "--data", SURVEY, "--out", "a_file", "--device", "cpu",
                                         "--batch-size", "4", "--max-steps", "1"], ["a_file"]),
    "demo: --out is a file": (["demo", "--out", "a_file", "--n", "3"], ["a_file"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_expected_failure_is_one_line(inputs, case):
    args, names = CASES[case]
    assert_one_line(_run(inputs, *args), *names)


def test_convert_into_a_file_names_it(inputs):
    csv = inputs / "cat.csv"
    csv.write_text("object_id,ra,dec\nx1,10.0,1.0\n")
    assert_one_line(_run(inputs, "convert", "cat.csv", "--out", "a_file"), "a_file")


@pytest.mark.skipif(GPU, reason="this machine has a GPU: --device cuda is valid here")
@pytest.mark.parametrize("command", [
    ["embed", "--model", "model", "--data", SURVEY, "--out", "e_cuda", "--device", "cuda"],
    ["pretrain", "image", "--data", SURVEY, "--out", "run_cuda", "--device", "cuda", "--batch-size", "4"],
])
def test_cuda_without_a_gpu_is_one_line(inputs, command):
    assert_one_line(_run(inputs, *command), "device 'cuda'", "no CUDA GPU", "--device cpu")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: file permissions do not stop root from writing")
def test_unwritable_output_is_one_line(inputs, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        csv = inputs / "cat.csv"
        csv.write_text("object_id,ra,dec\nx1,10.0,1.0\n")
        assert_one_line(CliRunner().invoke(app, ["convert", str(csv), "--out", str(locked / "out")]),
                        str(locked), "permission denied")
    finally:
        locked.chmod(0o755)


def test_unwritable_output_is_one_line_even_as_root(inputs, tmp_path, monkeypatch):
    """The same through a stand-in for the kernel's refusal (root is never refused): every folder made
    below ``locked`` fails with EACCES, as it would for a user without write permission."""
    import pathlib

    locked = tmp_path / "locked"
    real_mkdir = pathlib.Path.mkdir

    def refusing_mkdir(self, *args, **kwargs):
        if str(self).startswith(str(locked)):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", refusing_mkdir)
    (inputs / "cat.csv").write_text("object_id,ra,dec\nx1,10.0,1.0\n")
    result = CliRunner().invoke(app, ["convert", str(inputs / "cat.csv"), "--out", str(locked / "out")])
    assert_one_line(result, str(locked / "out"), "permission denied")


def test_decompression_bomb_is_one_line(inputs, tmp_path, monkeypatch):
    from PIL import Image as PILImage

    PILImage.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1500)  # 2000 pixels: Pillow would only warn
    for args in (["convert", str(tmp_path / "bomb.png"), "--out", str(tmp_path / "out")],
                 ["search", "--index", str(inputs / "index"), "--file", str(tmp_path / "bomb.png")]):
        assert_one_line(CliRunner().invoke(app, args), "bomb.png", "image too large", "MAX_IMAGE_PIXELS")


def test_real_process_prints_one_line_and_debug_shows_the_traceback(inputs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "astroembed"]
    plain = subprocess.run(command + ["info", "lambda_1d.hdf5"], cwd=inputs, env=env, capture_output=True,
                           text=True, timeout=120)
    assert plain.returncode == EXIT_CODE
    assert plain.stderr.splitlines() == [
        "error: file lambda_1d.hdf5, field 'spectrum_lambda': expected 2 dimensions (objects first), got shape (2,)"]
    for debug in (command + ["--debug", "info", "lambda_1d.hdf5"], command + ["info", "lambda_1d.hdf5"]):
        run_env = env if "--debug" in debug else {**env, "ASTROEMBED_DEBUG": "1"}
        shown = subprocess.run(debug, cwd=inputs, env=run_env, capture_output=True, text=True, timeout=120)
        assert shown.returncode != 0 and "Traceback" in shown.stderr and "InvalidDataError" in shown.stderr


def test_commands_of_any_sub_app_get_the_handling_and_bugs_keep_their_traceback():
    """What another branch's new command gets without code of its own: expected failures as one line,
    anything else (a bug) raised with its traceback."""
    demo = typer.Typer(cls=ReportingGroup)
    sub = typer.Typer()
    demo.add_typer(sub, name="serve")

    @demo.callback()
    def _settings(debug: bool = typer.Option(False, "--debug")):
        pass

    @sub.command("start")
    def start(port: int = 0):
        if port < 0:
            raise ValueError(f"port {port} is negative")
        raise KeyError("a bug")

    runner = CliRunner()
    assert_one_line(runner.invoke(demo, ["serve", "start", "--port", "-1"]), "port -1 is negative")
    bug = runner.invoke(demo, ["serve", "start"])
    assert bug.exit_code == 1 and isinstance(bug.exception, KeyError)
    debug = runner.invoke(demo, ["--debug", "serve", "start", "--port", "-1"])
    assert isinstance(debug.exception, ValueError)


@pytest.mark.parametrize("code, meaning", [
    (errno.ENOSPC, "the disk is full"), (errno.EROFS, "the file system is read-only"),
    (errno.EACCES, "permission denied; choose a path you may write (or read)"),
    (errno.EIO, "I/O failed"),  # no hint of ours: the system's own words
])
def test_os_errors_read_as_path_and_meaning(code, meaning):
    assert one_line(OSError(code, "I/O failed", "/data/out")) == f"/data/out: {meaning}"


def test_multi_line_messages_become_one_line():
    assert one_line(ValueError("first\n  second\tthird")) == "first second third"
