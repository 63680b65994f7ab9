"""evaluate_embeddings: the split, what is fitted on what, the metrics.json schema, and the command."""

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.evaluate.inputs import FeatureSet, LabelTable
from astroembed.evaluate.metrics import photo_z_metrics
from astroembed.evaluate.probes import KNNProbe, split_indices
from astroembed.evaluate.runner import SCHEMA, EvaluateOptions, evaluate_embeddings
from astroembed.evaluate.tasks import parse_tasks


def _objects(n=400, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.02, 0.6, n)
    angle = z * 4
    good = np.c_[np.cos(angle), np.sin(angle), rng.normal(0, 0.02, (n, 2))]
    ids = np.array([f"o{i:04d}" for i in range(n)])
    kind = np.where(z > 0.3, "far", "near")
    return ids, z, good, rng.normal(size=(n, 4)), kind


class RecordingPCA(BaseEstimator, TransformerMixin):
    """Identity transform that remembers which rows it was fitted on (by their first feature)."""

    def fit(self, X, y=None):
        RecordingPCA.fitted_on = X[:, 0].copy()
        return self

    def transform(self, X):
        return X


def test_probes_are_fitted_on_the_training_rows_and_scored_on_the_held_out_ones(tmp_path):
    ids, z, good, noise, kind = _objects()
    order = np.random.default_rng(5).permutation(len(ids))  # feature rows in another order than the labels
    features = FeatureSet("good", ids[order], good[order], "mem")
    marked = np.c_[np.arange(len(ids), dtype=float), noise[:, 1:]]  # first column: the object's label row
    baseline = FeatureSet("noise", ids, marked, "mem", transform=RecordingPCA())
    labels = LabelTable(ids, {"z": z, "kind": kind}, "labels")
    options = EvaluateOptions(probes=("knn",), n_bootstrap=50, label_fractions=(0.1, 1.0))
    metrics = evaluate_embeddings([features, baseline], labels, parse_tasks("photo-z:z,classification:kind"),
                                  tmp_path, options, report=False)
    train, test = split_indices(len(ids), 0.3, 0)  # over the sorted common ids, which are ids here
    assert np.array_equal(np.sort(RecordingPCA.fitted_on), train.astype(float))  # held-out rows unseen
    probe = KNNProbe(seed=0).fit(good[train], z[train])
    expected = photo_z_metrics(z[test], probe.predict(good[test]))
    got = metrics["tasks"]["photo-z:z"]["results"]["good"]["knn"]
    for key, value in expected.items():
        assert got["metrics"][key] == pytest.approx(value)
        lo, hi = got["intervals"][key]
        assert lo <= value + 1e-12 and value - 1e-12 <= hi
    assert got["metrics"]["nmad"] < 0.02 < metrics["tasks"]["photo-z:z"]["results"]["noise"]["knn"]["metrics"]["nmad"]
    assert metrics["tasks"]["classification:kind"]["results"]["good"]["knn"]["metrics"]["accuracy"] > 0.95
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["schema"] == SCHEMA and on_disk["inputs"]["n_train"] == len(train)
    curve = on_disk["tasks"]["photo-z:z"]["label_efficiency"]["good"]
    assert curve["n_labels"] == [28, 280] and curve["metric"] == "nmad"


@pytest.mark.slow  # UMAP's numba compilation takes most of a minute in a fresh process
def test_retrieval_posterior_and_anomaly_tasks_and_the_report(tmp_path):
    ids, z, good, noise, kind = _objects(300, seed=1)
    sets = [FeatureSet("good", ids, good, "mem"), FeatureSet("noise", ids, noise, "mem")]
    labels = LabelTable(ids, {"z": z, "kind": kind}, "labels")
    options = EvaluateOptions(probes=("knn", "linear"), n_bootstrap=30, label_fractions=(1.0,), posterior_epochs=3,
                              cross_modal=(("good", "noise"),))
    metrics = evaluate_embeddings(sets, labels, parse_tasks("regression:z,retrieval:kind,posterior:z,anomaly"),
                                  tmp_path, options)
    retrieval = metrics["tasks"]["retrieval:kind"]["results"]
    assert retrieval["good"]["metrics"]["ndcg@10"] > 0.9 > retrieval["good"]["chance"]["ndcg@10"]
    assert set(retrieval) == {"good", "noise", "good->noise"}
    posterior = metrics["tasks"]["posterior:z"]["results"]["good"]
    assert set(posterior) == {"flow", "knn_gaussian"} and set(posterior["flow"]["coverage"]) == {"68", "95"}
    anomaly = metrics["tasks"]["anomaly"]["results"]["good"]
    assert (tmp_path / "anomalies_good.parquet").exists() and 0 <= anomaly["held_out_fraction_below"]["0.1"] <= 0.3
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4 and "http" not in page  # self-contained
    assert "<script" not in page and (tmp_path / "umap.png").exists()


def test_evaluate_command_on_a_catalogue_with_feature_columns(tmp_path):
    from astropy.table import Table

    ids, z, good, _, _ = _objects(200, seed=2)
    Table({"object_id": ids, "a": good[:, 0], "b": good[:, 1], "zspec": z}).write(tmp_path / "cat.fits")
    runner = CliRunner()
    args = ["evaluate", "--embeddings", str(tmp_path / "cat.fits"), "--features", "a,b", "--tasks", "photo-z:zspec",
            "--out", str(tmp_path / "out"), "--no-report", "--probes", "knn", "--bootstrap", "20"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["tasks"]["photo-z:zspec"]["results"]["features"]["knn"]["metrics"]["nmad"] < 0.05
    base = args[:5]  # evaluate --embeddings CAT --features a,b
    bad = runner.invoke(app, base + ["--tasks", "photo-z:redshift", "--out", str(tmp_path / "o2"), "--no-report"])
    assert bad.exit_code == 2 and "redshift" in bad.output and "cat.fits" in bad.output
    bad = runner.invoke(app, base + ["--tasks", "cluster:zspec", "--out", str(tmp_path / "o3")])
    assert bad.exit_code == 2 and "unknown task kind" in bad.output


def test_given_held_out_ids_replace_the_seeded_split(tmp_path):
    ids, z, good, _, _ = _objects(120, seed=3)
    held = ids[::4]
    metrics = evaluate_embeddings([FeatureSet("good", ids, good, "mem")], LabelTable(ids, {"z": z}, "labels"),
                                  parse_tasks("regression:z"), tmp_path,
                                  EvaluateOptions(probes=("linear",), n_bootstrap=10, label_fractions=(1.0,)),
                                  report=False, held_out_ids=held)
    assert metrics["inputs"]["n_test"] == 30 and metrics["inputs"]["split"] == "given held-out ids"
    rows = np.isin(ids, held)
    from astroembed.evaluate.probes import LinearProbe
    from sklearn.metrics import r2_score

    expected = r2_score(z[rows], LinearProbe().fit(good[~rows], z[~rows]).predict(good[rows]))
    assert metrics["tasks"]["regression:z"]["results"]["good"]["linear"]["metrics"]["r2"] == pytest.approx(expected)
