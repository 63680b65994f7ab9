"""The supervised and retrieval tasks of `astroembed evaluate`, on a train / held-out split of one
feature set: probes fitted on the training rows only, metrics with bootstrap intervals on the held-out
rows, label-efficiency curves, and label-based retrieval quality against a random ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import (bootstrap_intervals, classification_metrics, ndcg_at_k, photo_z_metrics, recall_at_k,
                      regression_metrics)
from .probes import PROBES
from .vectors import unit_rows

__all__ = ["Task", "parse_tasks", "KINDS", "PRIMARY_METRIC", "probe_task", "label_efficiency", "label_order",
           "retrieval_task", "score_predictions", "label_subsets", "LABEL_FRACTIONS", "check_label_fractions",
           "parse_label_fractions"]

KINDS = ("regression", "classification", "photo-z", "retrieval", "posterior", "anomaly")
NEEDS_TARGET = ("regression", "classification", "photo-z", "retrieval", "posterior")
# The metric a label-efficiency curve follows, and whether larger is better.
PRIMARY_METRIC = {"regression": ("r2", True), "photo-z": ("nmad", False), "classification": ("balanced_accuracy", True)}
# The points of a label-efficiency curve: fractions of the training labels (astroPT's 1, 3, 10, 30, 100 %).
LABEL_FRACTIONS = (0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class Task:
    """One evaluation: ``kind`` (see KINDS) of the label column ``target`` (None for anomaly)."""

    kind: str
    target: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind


def parse_tasks(spec: str) -> list[Task]:
    """``"photo-z:zs,classification:specClass,anomaly"`` -> tasks; a bad kind or missing target is an error."""
    tasks = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        kind, _, target = item.partition(":")
        if kind not in KINDS:
            raise ValueError(f"unknown task kind {kind!r} in {item!r}; kinds: {', '.join(KINDS)}")
        if kind in NEEDS_TARGET and not target:
            raise ValueError(f"task {kind!r} needs a label column: write {kind}:COLUMN")
        tasks.append(Task(kind, target or None))
    if not tasks:
        raise ValueError("no tasks given")
    return tasks


def check_label_fractions(fractions) -> tuple[float, ...]:
    """Label fractions as a tuple of floats, each in (0, 1] and strictly increasing; () means no curve.

    Increasing, because each subset is the prefix of one seeded order (:func:`label_order`), so a curve
    read left to right adds labels to the same objects; a repeated or unsorted list is a mistake, not a
    request.

    Raises
    ------
    ValueError
        Naming the offending value.
    """
    values = []
    for value in fractions:
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"label fraction {value!r} is not a number") from None
        if not 0 < f <= 1:  # also refuses NaN
            raise ValueError(f"label fraction {value!r} must be in (0, 1] (1 = every training label)")
        if values and f <= values[-1]:
            raise ValueError(f"label fractions must be strictly increasing, got {f:g} after {values[-1]:g}")
        values.append(f)
    return tuple(values)


def parse_label_fractions(spec: str) -> tuple[float, ...]:
    """``"0.01,0.03,0.1,0.3,1"`` -> ``(0.01, 0.03, 0.1, 0.3, 1.0)``, checked by :func:`check_label_fractions`;
    ``"none"`` (or an empty string) -> ``()``: no label-efficiency curve."""
    spec = spec.strip()
    if spec.lower() in ("", "none"):
        return ()
    return check_label_fractions([s.strip() for s in spec.split(",")])


def probe_kind(kind: str) -> str:
    return "classification" if kind == "classification" else "regression"


def task_metrics(kind: str, y_true, y_pred, proba=None, classes=None) -> dict[str, float]:
    if kind == "photo-z":
        return photo_z_metrics(y_true, y_pred)
    if kind == "classification":
        return classification_metrics(y_true, y_pred, proba, classes)
    return regression_metrics(y_true, y_pred)


def _probe(name: str, kind: str, seed: int, metric: str):
    cls = PROBES[name]
    options = {"metric": metric} if name == "knn" else {}
    return cls(task=probe_kind(kind), seed=seed, **options)


def probe_task(kind: str, X_train, y_train, X_test, y_test, probes=("knn", "linear", "mlp"), n_bootstrap: int = 300,
               seed: int = 0, knn_metric: str = "cosine") -> tuple[dict, dict[str, np.ndarray]]:
    """Fit each probe on the training rows, score on the held-out rows.

    Returns ``({probe: {"metrics", "intervals", ...}}, {probe: held-out predictions})``.
    """
    results, predictions = {}, {}
    for name in probes:
        probe = _probe(name, kind, seed, knn_metric).fit(X_train, y_train)
        results[name], predictions[name] = score_predictions(kind, probe, X_test, y_test, n_bootstrap, seed)
        if name == "knn":
            results[name]["k"] = probe.k_
    return results, predictions


def score_predictions(kind: str, model, X_test, y_test, n_bootstrap: int = 300, seed: int = 0
                      ) -> tuple[dict, np.ndarray]:
    """``({"metrics", "intervals"}, predictions)`` of a fitted ``model`` (a probe, or any estimator with
    predict / predict_proba / classes_) on the held-out rows."""
    y_pred = model.predict(X_test)
    arrays = [y_test, y_pred]
    classes = getattr(model, "classes_", None)
    if kind == "classification":
        arrays.append(model.predict_proba(X_test))
    entry = {"metrics": task_metrics(kind, *arrays, classes=classes),
             "intervals": bootstrap_intervals(lambda *a, c=classes: task_metrics(kind, *a, classes=c), *arrays,
                                              n_resamples=n_bootstrap, seed=seed)}
    return entry, y_pred


def label_order(kind: str, y_train: np.ndarray, seed: int = 0) -> np.ndarray:
    """A seeded order of the training rows whose first n are the n-label subset, for every n: subsets are
    nested (1 % is inside 3 %, ...), so curves differ only by how many labels the probe saw. For
    classification the first row of each class (in the seeded order) is moved to the front, so any
    subset of at least one row per class holds every class."""
    order = np.random.default_rng(seed).permutation(len(y_train))
    if kind != "classification":
        return order
    _, first = np.unique(np.asarray(y_train)[order], return_index=True)
    front = order[np.sort(first)]
    return np.r_[front, order[~np.isin(order, front)]]


def label_subsets(kind: str, y_train: np.ndarray, fractions=LABEL_FRACTIONS, seed: int = 0):
    """Yield ``(fraction, sorted training rows)`` for each label fraction: prefixes of :func:`label_order`
    (at least 2 rows, and one per class), skipping a subset that holds a single label value."""
    order = label_order(kind, y_train, seed)
    n_classes = len(np.unique(y_train)) if kind == "classification" else 0
    for fraction in fractions:
        rows = np.sort(order[:min(len(y_train), max(2, n_classes, int(round(fraction * len(y_train)))))])
        if len(np.unique(y_train[rows])) >= 2:
            yield fraction, rows


def label_efficiency(kind: str, X_train, y_train, X_test, y_test, probes=("knn", "linear", "mlp"),
                     fractions=LABEL_FRACTIONS, seed: int = 0, knn_metric: str = "cosine",
                     all_labels: dict | None = None) -> dict:
    """Primary metric on the held-out rows against the number of training labels, for each probe.

    Each fraction is a prefix of :func:`label_order` (nested subsets). ``all_labels`` (``probe_task``'s
    results) supplies the point with every training label, so probes already fitted are not fitted again.
    """
    metric, _ = PRIMARY_METRIC[kind]
    out = {"metric": metric, "fractions": [], "n_labels": [], "values": {p: [] for p in probes}}
    for fraction, rows in label_subsets(kind, y_train, fractions, seed):
        out["fractions"].append(float(fraction))
        out["n_labels"].append(int(len(rows)))
        for name in probes:
            if len(rows) == len(y_train) and all_labels and name in all_labels:
                out["values"][name].append(all_labels[name]["metrics"][metric])
                continue
            probe = _probe(name, kind, seed, knn_metric).fit(X_train[rows], y_train[rows])
            out["values"][name].append(task_metrics(kind, y_test, probe.predict(X_test))[metric])
    return out


def _relevance(y_query: np.ndarray, y_base: np.ndarray, tolerance: float):
    """(relevance function of (query rows, base indices), number of relevant base items per query).

    Floats are redshift-like: relevant when |dy| / (1 + y_query) < tolerance. Other labels: same class.
    """
    if np.issubdtype(y_base.dtype, np.floating):
        width = tolerance * (1 + y_query)
        ordered = np.sort(y_base)
        n_rel = np.searchsorted(ordered, y_query + width, "left") - np.searchsorted(ordered, y_query - width, "right")
        return (lambda q, idx: np.abs(y_base[idx] - y_query[q][:, None]) < width[q][:, None]), n_rel
    values, counts = np.unique(y_base, return_counts=True)
    count_of = dict(zip(values.tolist(), counts.tolist()))
    n_rel = np.array([count_of.get(v, 0) for v in y_query.tolist()])
    return (lambda q, idx: y_base[idx] == y_query[q][:, None]), n_rel


def retrieval_task(query_X, query_y, base_X, base_y, k: int = 10, tolerance: float = 0.01, seed: int = 0,
                   n_bootstrap: int = 300, metric: str = "cosine", standardise: bool = False) -> dict:
    """Recall@1, recall@k and nDCG@k of the top-k database items (nearest by ``metric``, on inputs optionally
    standardised with the database's statistics) for each query, with relevance from the label, beside the
    same metrics for a random ranking (what an uninformative embedding gives)."""
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    query_y, base_y = np.asarray(query_y), np.asarray(base_y)
    k = min(k, len(base_y))
    query_X, base_X = np.asarray(query_X, np.float64), np.asarray(base_X, np.float64)
    if standardise:
        scaler = StandardScaler().fit(base_X)
        query_X, base_X = scaler.transform(query_X), scaler.transform(base_X)
    if metric == "cosine":
        query_X, base_X = unit_rows(query_X), unit_rows(base_X)
    nearest = NearestNeighbors(n_neighbors=k).fit(base_X).kneighbors(query_X, return_distance=False)
    relevant, n_rel = _relevance(query_y, base_y, tolerance)
    rows = np.arange(len(query_y))
    rng = np.random.default_rng(seed)
    random = np.array([rng.choice(len(base_y), k, replace=False) for _ in rows])

    def metrics(rel, n):
        return {"recall@1": recall_at_k(rel, 1), f"recall@{k}": recall_at_k(rel, k), f"ndcg@{k}": ndcg_at_k(rel, n, k)}

    found, chance = relevant(rows, nearest), relevant(rows, random)
    return {"metrics": metrics(found, n_rel), "chance": metrics(chance, n_rel),
            "intervals": bootstrap_intervals(metrics, found, n_rel, n_resamples=n_bootstrap, seed=seed),
            "k": k, "n_queries": len(rows), "n_database": len(base_y),
            "relevance": "|dy|/(1+y) < %g" % tolerance if np.issubdtype(base_y.dtype, np.floating) else "same class"}
