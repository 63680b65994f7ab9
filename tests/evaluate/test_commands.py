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
                                 "regression:redshift", "--probes", "linear", "--bootstrap", "10", "--out", str(out),
                                 "--no-report"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["inputs"]["n_objects"] == len(galaxies) and metrics["inputs"]["n_test"] == 14  # 30 % of 48
    ranking = tmp_path / "anomalies.parquet"
    result = runner.invoke(app, ["anomalies", "--embeddings", str(out / "embeddings"), "--out", str(ranking)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(ranking).to_pydict()
    assert set(table) == {"object_id", "ra", "dec", "knn_distance", "ood_pvalue", "isolation_forest_score",
                          "anomaly_rank"}
    assert table["anomaly_rank"] == list(range(1, len(galaxies) + 1))
    assert np.all(np.diff(table["knn_distance"]) <= 0) and sorted(table["object_id"]) == sorted(
        g.object_id for g in galaxies)
    missing = runner.invoke(app, ["anomalies", "--embeddings", str(tmp_path / "nothing"), "--out", str(ranking)])
    assert missing.exit_code == 2 and "nothing" in missing.output
