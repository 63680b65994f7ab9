"""Label-efficiency curves: nested label subsets (for regression and classification alike), every class in
every subset, and the all-labels point taken from the probes already fitted instead of fitting again."""

import numpy as np
import pytest

from astroembed.evaluate import tasks
from astroembed.evaluate.tasks import label_efficiency, label_order, probe_task


def _classes(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(np.array(["rare", "common", "middle"]), n, p=[0.03, 0.77, 0.2])
    X = rng.normal(size=(n, 3)) + (y == "rare")[:, None] * 3.0 + (y == "middle")[:, None] * 1.5
    return X, y


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_label_subsets_are_nested_and_hold_every_class(kind):
    _, y = _classes()
    order = label_order(kind, y, seed=3)
    assert sorted(order.tolist()) == list(range(len(y)))  # a permutation: every row once
    subsets = [set(order[:n].tolist()) for n in (3, 9, 30, 90, 300)]
    assert all(small <= large for small, large in zip(subsets, subsets[1:]))
    if kind == "classification":
        assert set(y[order[:3]]) == {"rare", "common", "middle"}  # the smallest subset still has each class
    assert np.array_equal(order, label_order(kind, y, seed=3))  # seeded


def test_curve_rows_are_nested_prefixes(monkeypatch):
    """Record the rows each fit sees: every fraction's rows contain the previous fraction's rows."""
    X, y = _classes()
    seen = []
    original = tasks._probe

    def recording(name, kind, seed, metric):
        probe = original(name, kind, seed, metric)
        fit = probe.fit

        def fit_and_record(X_fit, y_fit):
            seen.append({tuple(row) for row in np.round(X_fit, 12)})
            return fit(X_fit, y_fit)

        probe.fit = fit_and_record
        return probe

    monkeypatch.setattr(tasks, "_probe", recording)
    curve = label_efficiency("classification", X, y, X[:50], y[:50], probes=("linear",),
                             fractions=(0.01, 0.1, 0.5, 1.0), seed=1)
    assert curve["n_labels"] == [3, 30, 150, 300]
    assert all(a <= b for a, b in zip(seen, seen[1:])) and len(seen) == 4


def test_all_labels_point_reuses_the_fitted_probes(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    y = X @ np.array([1.0, -0.5, 0.2, 0.0]) + rng.normal(0, 0.1, 200)
    results, _ = probe_task("regression", X[:150], y[:150], X[150:], y[150:], probes=("knn", "linear"),
                            n_bootstrap=10)
    fits = []
    original = tasks._probe
    monkeypatch.setattr(tasks, "_probe", lambda *a: fits.append(a[0]) or original(*a))
    curve = label_efficiency("regression", X[:150], y[:150], X[150:], y[150:], probes=("knn", "linear"),
                             fractions=(0.3, 1.0), all_labels=results)
    assert fits == ["knn", "linear"]  # only the 30 % point was fitted
    assert curve["values"]["linear"][-1] == results["linear"]["metrics"]["r2"]
    # and it is the value a fresh fit on all the labels gives
    monkeypatch.setattr(tasks, "_probe", original)
    fresh = label_efficiency("regression", X[:150], y[:150], X[150:], y[150:], probes=("knn", "linear"),
                             fractions=(1.0,))
    assert np.allclose([fresh["values"][p][0] for p in ("knn", "linear")],
                       [curve["values"][p][-1] for p in ("knn", "linear")])
