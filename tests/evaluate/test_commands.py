"""The `evaluate --model --data` and `anomalies` commands on a small survey embedded by a tiny model."""

import json

import numpy as np
import pyarrow.parquet as pq
from typer.testing import CliRunner

from astroembed.cli import app
from tests.embed.conftest import save_small_cnn


def test_evaluate_embeds_first_then_anomalies_ranks_the_catalogue(blob_survey, tmp_path):
    survey, galaxies = blob_survey
    model = save_small_cnn(tmp_path / "model", seed=0)
    runner = CliRunner()
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--model", str(model), "--data", str(survey), "--tasks",
                                 "regression:redshift,anomaly", "--probes", "linear", "--bootstrap", "10", "--out",
                                 str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["inputs"]["n_objects"] == len(galaxies) and metrics["inputs"]["n_test"] == 14  # 30 % of 48
    anomaly = metrics["tasks"]["anomaly"]["results"]["embedding"]  # the survey's cutouts add the pixel test
    assert set(anomaly["pixel_held_out_fraction_below"]) == set(anomaly["combined_held_out_fraction_below"]) == {
        "0.01", "0.05", "0.1"}
    assert "pixel_artefact_pvalue" in pq.read_table(anomaly["anomalies"]).column_names
    ranking = tmp_path / "anomalies.parquet"
    result = runner.invoke(app, ["anomalies", "--embeddings", str(out / "embeddings"), "--out", str(ranking)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(ranking).to_pydict()
    assert set(table) == {"object_id", "ra", "dec", "knn_distance", "ood_pvalue", "isolation_forest_score",
                          "anomaly_pvalue", "anomaly_score", "anomaly_rank"}
    assert table["anomaly_rank"] == list(range(1, len(galaxies) + 1))
    assert np.all(np.diff(table["knn_distance"]) <= 0) and sorted(table["object_id"]) == sorted(
        g.object_id for g in galaxies)
    # --data: the survey's cutouts add the pixel test, and the ranking follows the combined p-value
    result = runner.invoke(app, ["anomalies", "--embeddings", str(out / "embeddings"), "--out", str(ranking),
                                 "--data", str(survey)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(ranking).to_pydict()
    assert {"pixel_artefact_score", "pixel_artefact_pvalue"} <= set(table)
    assert np.all(np.diff(table["anomaly_pvalue"]) >= 0) and np.all(np.asarray(table["anomaly_pvalue"]) <= 1)
    missing = runner.invoke(app, ["anomalies", "--embeddings", str(tmp_path / "nothing"), "--out", str(ranking)])
    assert missing.exit_code == 2 and "nothing" in missing.output


def test_evaluate_trains_the_supervised_baseline_on_the_training_labels_only(blob_survey, tmp_path):
    """--supervised-steps adds a network trained from scratch on the survey's images, scored on the same
    held-out objects and along the same label fractions as the probes; a catalogue without images is refused."""
    import torch

    torch.set_num_threads(1)  # a shared 2-core machine: two threads per conv only contend
    survey, galaxies = blob_survey
    model = save_small_cnn(tmp_path / "model", seed=0)
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(model), "--data", str(survey), "--tasks", "regression:redshift", "--probes",
            "linear", "--bootstrap", "10", "--out", str(out), "--no-report", "--supervised-steps", "1",
            "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    task = json.loads((out / "metrics.json").read_text())["tasks"]["regression:redshift"]
    scratch = task["results"]["supervised_image"]["from_scratch"]
    assert scratch["steps"] == 1 and set(scratch["metrics"]) == set(task["results"]["embedding"]["linear"]["metrics"])
    assert all(lo <= hi for lo, hi in scratch["intervals"].values())
    curves = task["label_efficiency"]
    assert curves["supervised_image"]["n_labels"] == curves["embedding"]["n_labels"]
    assert curves["supervised_image"]["values"]["from_scratch"][-1] == scratch["metrics"]["r2"]  # reused
    table = tmp_path / "cat.csv"
    table.write_text("object_id,z,a\n" + "".join(f"{g.object_id},{g.labels['redshift']},{i}\n"
                                                 for i, g in enumerate(galaxies)))
    refused = CliRunner().invoke(app, ["evaluate", "--embeddings", str(table), "--features", "a", "--tasks",
                                       "regression:z", "--out", str(tmp_path / "e2"), "--no-report",
                                       "--supervised-steps", "3"])
    assert refused.exit_code == 2 and "MMU survey" in refused.output
