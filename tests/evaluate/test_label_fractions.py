"""--label-fractions: the points of the label-efficiency curves, checked (in (0, 1], increasing) and used
by the probes and the supervised baseline alike, on nested subsets."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.evaluate.runner import EvaluateOptions
from astroembed.evaluate.tasks import LABEL_FRACTIONS, check_label_fractions, parse_label_fractions


def test_parse_gives_floats_and_none_means_no_curve():
    assert parse_label_fractions("0.05, 0.2,1") == (0.05, 0.2, 1.0)
    assert parse_label_fractions("none") == () and parse_label_fractions("") == ()
    assert EvaluateOptions().label_fractions == LABEL_FRACTIONS == (0.01, 0.03, 0.1, 0.3, 1.0)
    assert EvaluateOptions(label_fractions=[0.5, 1]).label_fractions == (0.5, 1.0)


@pytest.mark.parametrize("spec, message", [
    ("0,0.5", "'0' must be in (0, 1]"), ("0.5,1.5", "'1.5' must be in (0, 1]"), ("-0.1", "must be in (0, 1]"),
    ("nan", "must be in (0, 1]"), ("0.3,0.1", "strictly increasing, got 0.1 after 0.3"),
    ("0.1,0.1", "strictly increasing"), ("0.1,ten", "'ten' is not a number"), ("0.1,,1", "'' is not a number"),
])
def test_bad_fractions_are_refused_naming_the_value(spec, message):
    with pytest.raises(ValueError) as info:
        parse_label_fractions(spec)
    assert message in str(info.value)
    with pytest.raises(ValueError):  # the library call checks too, not only the command
        EvaluateOptions(label_fractions=tuple(spec.split(",")))


def test_check_accepts_every_value_in_range():
    assert check_label_fractions((1e-6, 0.5, 1)) == (1e-6, 0.5, 1.0)


def _catalogue(tmp_path, n=200):
    from astropy.table import Table

    rng = np.random.default_rng(1)
    z = rng.uniform(0.02, 0.6, n)
    Table({"object_id": [f"o{i:03d}" for i in range(n)], "a": np.cos(4 * z), "b": np.sin(4 * z),
           "zspec": z}).write(tmp_path / "cat.fits")
    return ["evaluate", "--embeddings", str(tmp_path / "cat.fits"), "--features", "a,b", "--tasks",
            "regression:zspec", "--no-report", "--probes", "knn,linear", "--bootstrap", "10"]


def test_command_draws_the_curve_at_the_fractions_given(tmp_path):
    args = _catalogue(tmp_path)
    result = CliRunner().invoke(app, args + ["--out", str(tmp_path / "o"), "--label-fractions", "0.05,0.5,1"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    curve = metrics["tasks"]["regression:zspec"]["label_efficiency"]["features"]
    assert curve["fractions"] == [0.05, 0.5, 1.0] and curve["n_labels"] == [7, 70, 140]  # of 140 training rows
    assert len(curve["values"]["knn"]) == len(curve["values"]["linear"]) == 3
    assert metrics["options"]["label_fractions"] == [0.05, 0.5, 1.0]
    none = CliRunner().invoke(app, args + ["--out", str(tmp_path / "n"), "--label-fractions", "none"])
    assert none.exit_code == 0, none.output
    assert json.loads((tmp_path / "n" / "metrics.json").read_text())["tasks"]["regression:zspec"][
        "label_efficiency"] == {}
    default = CliRunner().invoke(app, args + ["--out", str(tmp_path / "d")])
    assert default.exit_code == 0, default.output
    assert json.loads((tmp_path / "d" / "metrics.json").read_text())["tasks"]["regression:zspec"][
        "label_efficiency"]["features"]["fractions"] == list(LABEL_FRACTIONS)


def test_command_refuses_bad_fractions_before_any_work(tmp_path):
    args = _catalogue(tmp_path)
    result = CliRunner().invoke(app, args + ["--out", str(tmp_path / "o"), "--label-fractions", "0.3,0.1"])
    assert result.exit_code == 2 and "strictly increasing" in result.output
    assert not (tmp_path / "o" / "metrics.json").exists()
