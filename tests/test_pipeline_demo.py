"""The main job (`make demo` = `astroembed demo`): every stage runs end to end on a small built-in
survey, writes its results, and a rerun resumes instead of starting over."""

import json
from pathlib import Path

import pytest
from rich.console import Console

from astroembed.pipeline import DemoFolderError, build_survey, held_out_split, run_demo

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


@pytest.mark.parametrize("args, budgets", [([], (5.0, 2.0)), (["--minutes", "0.5"], (0.5, 0.5)),
                                           (["--image-minutes", "4", "--spectrum-minutes", "1"], (4.0, 1.0))])
def test_cli_demo_budgets(monkeypatch, tmp_path, args, budgets):
    """The image stage gets the larger default budget (retrieval gains from image steps, BENCHMARKS.md);
    --minutes sets both, for a quick look."""
    from typer.testing import CliRunner

    import astroembed.pipeline
    from astroembed.cli import app

    seen = {}
    monkeypatch.setattr(astroembed.pipeline, "run_demo", lambda **kwargs: seen.update(kwargs))
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    assert (seen["image_minutes"], seen["spectrum_minutes"]) == budgets


@pytest.mark.slow  # ~2 minutes on a busy 2-core machine: a 60-galaxy survey, each training stage 2 steps
def test_demo_runs_every_stage_and_a_rerun_resumes(tmp_path):
    """Every stage runs and its numbers are the right numbers for this survey.

    Two steps per stage teach the models almost nothing (learning is shown stage by stage in
    tests/train); what this test pins is the plumbing: held-out galaxies joined to their own redshifts
    (even a random-init encoder's k-NN R^2 is ~0.36 on this survey, a mis-join gives ~0 or less),
    neighbours closer in redshift than random pairs, chance values and reports consistent, the example
    search ordered and without its query, and strict JSON.
    """
    from astroembed.data.mmu import MMUSurvey

    out = tmp_path / "demo"
    budget = {"image_minutes": 2.0, "spectrum_minutes": 2.0, "clip_minutes": 2.0, "max_steps": 2}
    results = run_demo(out, n=60, seed=0, console=QUIET, **budget)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    assert json.loads((out / "results.json").read_text(), parse_constant=refuse) == json.loads(json.dumps(results))
    for name in ("image", "spectrum", "clip"):
        assert (out / name / "model" / "model.safetensors").is_file(), name
    for name in ("image", "spectrum"):
        config = json.loads((out / name / "model" / "config.json").read_text())
        assert config["training"]["global_step"] == 2, name
    # The alignment trains heads on the frozen encoders' features: both encoders are exported unchanged.
    clip = json.loads((out / "clip" / "model" / "config.json").read_text())["training"]
    assert clip["alignment"] == "frozen_features" and clip["n_galaxies"] == 42
    assert results["alignment"]["method"] == "frozen"
    # Photometry is the third modality: a photometry encoder trained with the heads, its catalogue embedded.
    assert results["alignment"]["modalities"] == ["image", "spectrum", "photometry"] and clip["photometry_from_scratch"]
    assert any((out / "embeddings" / "clip_photometry").glob("**/*.parquet"))

    reports = [*results["image_redshift_knn"].values(), results["spectrum_redshift_knn"]]
    assert all((r["n_train"], r["n_test"]) == (42, 18) for r in reports)
    # The random-init encoder involves no training: its k-NN R^2 is fixed by the survey and the seed.
    assert results["image_redshift_knn"]["random_init"]["r2"] > 0.2
    assert results["image_redshift_knn"]["pretrained"]["r2"] > 0.1 and results["spectrum_redshift_knn"]["r2"] > 0.2
    rec = results["spectrum_reconstruction"]
    assert rec["n_spectra"] == 18 and rec["chunk_len"] == 12 and rec["interpolation_mse"] > 0
    assert rec["ratio"] == pytest.approx(rec["model_mse"] / rec["interpolation_mse"])
    assert set(results["retrieval"]) == {"image_to_spectrum", "spectrum_to_image", "photometry_to_image",
                                         "image_to_photometry", "photometry_to_spectrum", "spectrum_to_photometry"}
    for r in results["retrieval"].values():
        assert r["n"] == 18 and r["top1_chance"] == pytest.approx(1 / 18) == r["top1pct_chance"]
        assert r["top1"] <= r["top1pct"] and 0 <= r["median_rank"] <= 17
    image = results["neighbour_redshift"]["image"]
    assert image["n_queries"] == 18 and image["median_dz_neighbours"] < image["median_dz_random"]

    search = results["search"]
    z = dict(zip(MMUSurvey(results["survey"]).object_ids,
                 MMUSurvey(results["survey"]).labels(["redshift"])["redshift"]))
    assert search["query_redshift"] == pytest.approx(z[search["query"]])
    for direction, rows in search["neighbours"].items():
        assert len(rows) == 5, direction
        similarities = [sim for _, sim, _ in rows]
        assert similarities == sorted(similarities, reverse=True)
        assert all(zz == pytest.approx(z[oid], abs=1e-4) for oid, _, zz in rows)
    assert search["query"] not in [oid for oid, _, _ in search["neighbours"]["image->image"]]
    assert set(search["neighbours"]) == {"image->image", "image->spectrum", "image->photometry"}

    # The report: `astroembed evaluate` on every embedding and the photometry baseline, same held-out split.
    report = out / "report"
    metrics = json.loads((report / "metrics.json").read_text(), parse_constant=refuse)
    assert (report / "report.html").is_file() and results["report"]["html"] == str(report / "report.html")
    assert metrics["inputs"]["n_test"] == 18 and metrics["inputs"]["split"] == "given held-out ids"
    assert set(metrics["tasks"]) == {"photo-z:redshift", "regression:log_stellar_mass", "regression:metallicity",
                                     "regression:sfr_300myr_fraction"}
    for key, task in metrics["tasks"].items():
        assert set(task["results"]) == {"image_pretrained", "image_random_init", "spectrum", "clip_image",
                                        "clip_spectrum", "clip_photometry", "photometry"}, key
        for name, by_probe in task["results"].items():
            for probe, r in by_probe.items():
                lo, hi = r["intervals"]["r2"]
                assert r["metrics"]["r2"] <= 1 and lo <= hi and r["metrics"]["mae"] > 0, (key, name, probe)
    # held-out galaxies joined to their own redshifts: the spectrum embedding and photometry predict them
    redshift = metrics["tasks"]["photo-z:redshift"]["results"]
    assert redshift["spectrum"]["linear"]["metrics"]["r2"] > 0.2 and redshift["photometry"]["knn"]["metrics"]["r2"] > 0
    assert redshift["spectrum"]["knn"]["metrics"]["nmad"] < 0.5
    assert results["report"]["r2_knn"]["photo-z:redshift"]["spectrum"] == redshift["spectrum"]["knn"]["metrics"]["r2"]
    # The aligned photometry embedding's k-NN redshift beside the photometry-only baseline, from that report.
    photometry = results["photometry_redshift_knn"]
    assert photometry["clip_photometry"] == redshift["clip_photometry"]["knn"]["metrics"]
    assert photometry["photometry_baseline"] == redshift["photometry"]["knn"]["metrics"]
    assert photometry["clip_photometry"]["nmad"] > 0 and photometry["clip_photometry"]["r2"] <= 1

    # Spectra predicted from images: the decoder trained on the training split, scored on the held-out one
    # beside the k-NN mean, and a figure of five held-out galaxies.
    predicted = results["predicted_spectra"]
    ids, _, test = held_out_split(Path(results["survey"]), 0)
    assert predicted["n_held_out"] == 18 and len(set(predicted["objects_shown"])) == 5
    assert set(predicted["objects_shown"]) <= {str(i) for i in ids[test]}
    assert all(0 < v < 1e6 for v in predicted["chi2_per_dof_median"].values()), predicted
    assert (out / "predicted_spectra.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    decoder = out / "clip" / "model" / "spectrum_decoder"
    assert decoder.is_dir()

    # Rerunning finds every stage done: same models (same content), same numbers.
    mtime = (out / "spectrum" / "model" / "model.safetensors").stat().st_mtime_ns
    again = run_demo(out, n=60, seed=0, console=QUIET, **budget)
    assert (out / "spectrum" / "model" / "model.safetensors").stat().st_mtime_ns == mtime
    assert again["spectrum_redshift_knn"] == results["spectrum_redshift_knn"]
    assert again["retrieval"] == results["retrieval"]
    assert again["predicted_spectra"] == results["predicted_spectra"]
