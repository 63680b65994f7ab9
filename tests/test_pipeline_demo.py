"""The main job (`make demo` = `astroembed demo`): every stage runs end to end on a small built-in
survey, writes its results, and a rerun resumes instead of starting over."""

import json

import numpy as np
import pytest
from rich.console import Console

from astroembed.pipeline import run_demo


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
