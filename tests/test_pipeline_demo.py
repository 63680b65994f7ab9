"""The main job (`make demo` = `astroembed demo`): every stage runs end to end on a small built-in
survey, writes its results, and a rerun resumes instead of starting over."""

import json

import numpy as np
import pytest
from rich.console import Console

from astroembed.pipeline import DemoFolderError, build_survey, run_demo

QUIET = Console(quiet=True)


@pytest.fixture
def fake_render(monkeypatch):
    """Replace the (slow) survey rendering by one that writes a tile-like file; records its calls."""
    import astroembed.data.simulate as simulate

    calls = []

    def render(n, seed, out, progress=False):
        calls.append((n, seed))
        path = out / "astroembed_sim" / "default"
        path.mkdir(parents=True)
        (path / "healpix=0.hdf5").write_text(f"{n} galaxies, seed {seed}")
        if render.fail:
            raise KeyboardInterrupt  # as when the user stops a long render
        return path

    render.fail = False
    monkeypatch.setattr(simulate, "simulate_survey", render)
    return render, calls


def test_survey_is_built_once_and_reused_with_the_same_settings(tmp_path, fake_render):
    _, calls = fake_render
    path = build_survey(tmp_path, 6, 0, QUIET)
    assert path == tmp_path / "survey" / "astroembed_sim" / "default" and calls == [(6, 0)]
    assert sorted(p.name for p in (tmp_path / "survey").iterdir()) == ["DONE.json", "astroembed_sim"]
    assert build_survey(tmp_path, 6, 0, QUIET) == path and calls == [(6, 0)]


def test_other_settings_refuse_instead_of_deleting_the_survey(tmp_path, fake_render):
    _, calls = fake_render
    path = build_survey(tmp_path, 6, 0, QUIET)
    (tmp_path / "image" / "model").mkdir(parents=True)  # a model trained on that survey
    for n, seed in ((7, 0), (6, 1)):
        with pytest.raises(DemoFolderError, match=f"n=6, seed=0 \\(asked: n={n}, seed={seed}\\)"):
            build_survey(tmp_path, n, seed, QUIET)
    assert (path / "healpix=0.hdf5").read_text() == "6 galaxies, seed 0" and calls == [(6, 0)]
    assert (tmp_path / "image" / "model").is_dir()


def test_a_folder_the_demo_did_not_write_is_never_deleted(tmp_path, fake_render):
    _, calls = fake_render
    mine = tmp_path / "survey" / "my_catalogue.fits"
    mine.parent.mkdir()
    mine.write_text("user data")
    with pytest.raises(DemoFolderError, match="was not written by the demo"):
        build_survey(tmp_path, 6, 0, QUIET)
    assert mine.read_text() == "user data" and calls == []
    # Stage results whose survey is gone cannot be trusted, nor deleted: refuse.
    other = tmp_path / "other"
    (other / "clip" / "model").mkdir(parents=True)
    with pytest.raises(DemoFolderError, match="clip"):
        build_survey(other, 6, 0, QUIET)
    assert (other / "clip" / "model").is_dir() and calls == []


def test_the_demos_own_interrupted_render_is_redone(tmp_path, fake_render):
    render, calls = fake_render
    render.fail = True
    with pytest.raises(KeyboardInterrupt):
        build_survey(tmp_path, 6, 0, QUIET)
    assert (tmp_path / "survey" / "RENDERING.json").is_file() and not (tmp_path / "survey" / "DONE.json").exists()
    render.fail = False
    path = build_survey(tmp_path, 6, 0, QUIET)
    assert calls == [(6, 0), (6, 0)] and (tmp_path / "survey" / "DONE.json").is_file()
    assert not (tmp_path / "survey" / "RENDERING.json").exists() and (path / "healpix=0.hdf5").is_file()


def test_cli_demo_with_other_settings_is_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from astroembed.cli import app

    (tmp_path / "survey").mkdir()
    (tmp_path / "survey" / "DONE.json").write_text(json.dumps({"n": 60, "seed": 0}))
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--n", "80"])
    assert result.exit_code == 2 and "n=60, seed=0" in result.output and "Traceback" not in result.output
    assert (tmp_path / "survey" / "DONE.json").is_file()


@pytest.mark.slow  # ~1 minute: a 60-galaxy survey, each training stage a few seconds
def test_demo_runs_every_stage_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "demo"
    minutes = {"image_minutes": 0.05, "spectrum_minutes": 0.05, "clip_minutes": 0.05}
    results = run_demo(out, n=60, seed=0, console=Console(quiet=True), **minutes)

    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    for name in ("image", "spectrum", "clip"):
        assert (out / name / "model" / "model.safetensors").is_file(), name
    for report in (*results["image_redshift_knn"].values(), results["spectrum_redshift_knn"]):
        assert report["n_test"] == 18 and np.isfinite(report["r2"])
    rec = results["spectrum_reconstruction"]
    assert rec["model_mse"] > 0 and rec["interpolation_mse"] > 0
    for r in results["retrieval"].values():
        assert 0.0 <= r["top1"] <= 1.0 and r["n"] == 18
    neighbours = results["search"]["neighbours"]
    assert neighbours and all(len(rows) > 0 for rows in neighbours.values())

    # Rerunning finds every stage done: same models (same content), same numbers.
    mtime = (out / "spectrum" / "model" / "model.safetensors").stat().st_mtime_ns
    again = run_demo(out, n=60, seed=0, console=Console(quiet=True), **minutes)
    assert (out / "spectrum" / "model" / "model.safetensors").stat().st_mtime_ns == mtime
    assert again["spectrum_redshift_knn"] == results["spectrum_redshift_knn"]
    assert again["retrieval"] == results["retrieval"]
