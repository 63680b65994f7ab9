"""`astroembed evaluate` as a library call: feature sets and labels in, metrics.json (and a report) out.

Every feature set (the embedding under test first, then its baselines: random init, PCA of pixels,
photometry, ...) is scored on the same objects with the same seeded split; every probe, scaler, k,
flow and OOD reference is fitted on the training rows only, so held-out objects never influence what
they are scored by.

metrics.json schema (``"schema": "astroembed.evaluate/1"``)::

    {"schema", "created", "options": {...},
     "inputs": {"labels": source, "feature_sets": {name: {"source", "dim", "n_objects", "n_dropped", "join"}},
                "n_objects", "n_train", "n_test", "split": "seeded" | "given"},
     "tasks": {"<kind>:<target>": {"kind", "target", "n_train", "n_test",
         # regression / photo-z / classification:
         "results": {feature_set: {probe: {"metrics": {name: value}, "intervals": {name: [lo, hi]}, "k"?}}},
         #   networks trained from scratch: feature set "supervised_image" / "supervised_spectrum", probe
         #   "from_scratch", with "steps" and "seconds" of its training
         "label_efficiency": {feature_set: {"metric", "fractions", "n_labels", "values": {probe: [...]}}},
         # retrieval: "results": {"A" or "A->B": {"metrics", "chance", "intervals", "k", "relevance", ...}}
         # posterior: "results": {feature_set: {"flow" | "knn_gaussian": {"nll", "coverage": {"68": [...],
         #            "95": [...]}, "pit_histogram": [[...]]}}}
         # anomaly: "results": {feature_set: {"held_out_fraction_below": {"0.01", "0.05", "0.1"},
         #          "anomalies": path of the Parquet ranking}}; with the labels' survey's cutouts also
         #          "pixel_held_out_fraction_below" and "combined_held_out_fraction_below" (same keys)
     }}}

Intervals are 95 % percentile-bootstrap intervals over held-out objects.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.records import InvalidDataError
from .inputs import FeatureSet, LabelTable, align
from .probes import split_indices
from .tasks import LABEL_FRACTIONS, Task, check_label_fractions, label_efficiency, probe_task, retrieval_task

__all__ = ["EvaluateOptions", "evaluate_embeddings", "SCHEMA"]

SCHEMA = "astroembed.evaluate/1"


@dataclass
class EvaluateOptions:
    """Settings of one evaluation run (all recorded in metrics.json)."""

    seed: int = 0
    test_fraction: float = 0.3
    probes: tuple[str, ...] = ("knn", "linear", "mlp")
    n_bootstrap: int = 300
    label_fractions: tuple[float, ...] = LABEL_FRACTIONS
    knn_metric: str = "cosine"
    retrieval_k: int = 10
    retrieval_tolerance: float = 0.01
    cross_modal: tuple[tuple[str, str], ...] = ()
    posterior_epochs: int = 100
    anomaly_k: int = 10
    join_radius_arcsec: float = 1.0
    supervised_steps: int = 0  # > 0 (or supervised_minutes > 0): networks trained from scratch, per fit
    supervised_minutes: float = 0.0
    supervised_modalities: tuple[str, ...] = ()  # () = every raw modality of the labels' survey
    device: str = "auto"

    def __post_init__(self):
        # the curve's points (nested subsets, increasing); () = no curve
        self.label_fractions = check_label_fractions(self.label_fractions)


@dataclass
class _Aligned:
    """Feature sets and labels on one list of objects, with the split."""

    object_ids: np.ndarray
    X: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    train: np.ndarray
    test: np.ndarray


def _has_label(values: np.ndarray) -> np.ndarray:
    if np.issubdtype(values.dtype, np.floating):
        return np.isfinite(values)
    return np.array([str(v) not in ("", "nan", "None", "--") for v in values])


def _target(data: _Aligned, task: Task, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = data.labels[task.target][rows]
    if task.kind in ("regression", "photo-z", "posterior") or (task.kind == "retrieval"
                                                                and np.issubdtype(y.dtype, np.floating)):
        y = y.astype(np.float64)
    keep = _has_label(y)
    return rows[keep], y[keep]


def _supervised(data: _Aligned, task: Task, options: EvaluateOptions, artefacts: dict) -> dict:
    train, y_train = _target(data, task, data.train)
    test, y_test = _target(data, task, data.test)
    out = {"n_train": len(train), "n_test": len(test), "results": {}, "label_efficiency": {}}
    for name, X in data.X.items():
        out["results"][name], predictions = probe_task(
            task.kind, X[train], y_train, X[test], y_test, options.probes, options.n_bootstrap, options.seed,
            options.knn_metric)
        artefacts.setdefault("predictions", {}).setdefault(task.key, {})[name] = (y_test, predictions)
        if not options.label_fractions:  # no curve asked for (e.g. the demo's time budget)
            continue
        out["label_efficiency"][name] = label_efficiency(task.kind, X[train], y_train, X[test], y_test,
                                                         options.probes, options.label_fractions, options.seed,
                                                         options.knn_metric, all_labels=out["results"][name])
    if options.supervised_steps > 0 or options.supervised_minutes > 0:
        from .from_scratch import from_scratch_results

        results, curves, predictions = from_scratch_results(task.kind, data, options, artefacts, train, y_train,
                                                            test, y_test)
        out["results"].update(results)
        out["label_efficiency"].update(curves)
        artefacts["predictions"][task.key].update({n: (y_test, p) for n, p in predictions.items()})
    return out


def _retrieval(data: _Aligned, task: Task, options: EvaluateOptions) -> dict:
    train, y_train = _target(data, task, data.train)
    test, y_test = _target(data, task, data.test)
    pairs = [(n, n) for n in data.X] + [tuple(p) for p in options.cross_modal]
    out = {"n_train": len(train), "n_test": len(test), "results": {}}
    for query, base in pairs:
        if query not in data.X or base not in data.X:
            raise ValueError(f"cross-modal pair {query}->{base}: feature sets are {list(data.X)}")
        # in one space: standardised like the probes; across modalities: the shared space as trained
        same = query == base
        out["results"][query if same else f"{query}->{base}"] = retrieval_task(
            data.X[query][test], y_test, data.X[base][train], y_train, options.retrieval_k,
            options.retrieval_tolerance, options.seed, options.n_bootstrap,
            metric=options.knn_metric if same else "cosine", standardise=same)
    return out


def _posterior(data: _Aligned, task: Task, options: EvaluateOptions, artefacts: dict) -> dict:
    from .posterior import FlowPosterior, KNNGaussianPosterior, posterior_metrics

    train, y_train = _target(data, task, data.train)
    test, y_test = _target(data, task, data.test)
    out = {"n_train": len(train), "n_test": len(test), "results": {}}
    for name, X in data.X.items():
        models = {"flow": FlowPosterior(max_epochs=options.posterior_epochs, seed=options.seed),
                  "knn_gaussian": KNNGaussianPosterior(metric=options.knn_metric, seed=options.seed)}
        out["results"][name] = {}
        for model_name, model in models.items():
            metrics = posterior_metrics(model.fit(X[train], y_train), X[test], y_test)
            artefacts.setdefault("pit", {}).setdefault(task.key, {})[f"{name} {model_name}"] = metrics.pop("pit")
            out["results"][name][model_name] = metrics
    return out


def _survey_pixels(data: _Aligned, artefacts: dict):
    """Pixel-quality features of every object when the labels' survey has its cutouts, else None."""
    survey = artefacts.get("survey")
    if survey is None or "image_array" not in survey.columns:
        return None
    from .raw_inputs import survey_pixel_features

    artefacts["log"]("anomaly: pixel-quality features of the cutouts")
    return survey_pixel_features(survey, survey.indices_of(data.object_ids))


def _anomaly(data: _Aligned, options: EvaluateOptions, out_dir: Path, artefacts: dict) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .anomaly import KNNOutlierScorer, combine_pvalues, rank_catalog
    from .pixel_quality import PixelArtefactScorer

    out = {"n_train": len(data.train), "n_test": len(data.test), "results": {}}
    pixels = _survey_pixels(data, artefacts)
    below = lambda p: {str(a): float(np.mean(p <= a)) for a in (0.01, 0.05, 0.1)}  # noqa: E731
    if pixels is not None:
        pixel_p = PixelArtefactScorer(seed=options.seed).fit(pixels[data.train]).p_value(pixels[data.test])
    for name, X in data.X.items():
        scorer = KNNOutlierScorer(k=options.anomaly_k, metric=options.knn_metric, seed=options.seed)
        p = scorer.fit(X[data.train]).p_value(X[data.test])
        columns = rank_catalog(X, k=options.anomaly_k, seed=options.seed, metric=options.knn_metric, pixels=pixels)
        path = out_dir / f"anomalies_{name}.parquet"
        pq.write_table(pa.table({"object_id": data.object_ids, **columns}).sort_by("anomaly_rank"), path)
        artefacts.setdefault("anomalies", {})[name] = columns
        out["results"][name] = {"held_out_fraction_below": below(p), "anomalies": str(path)}
        if pixels is not None:
            out["results"][name].update(pixel_held_out_fraction_below=below(pixel_p),
                                        combined_held_out_fraction_below=below(combine_pvalues(p, pixel_p)))
    return out


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def evaluate_embeddings(feature_sets: list[FeatureSet], labels: LabelTable, tasks: list[Task], out,
                        options: EvaluateOptions | None = None, test_feature_sets: list[FeatureSet] | None = None,
                        test_labels: LabelTable | None = None, report: bool = True, log=None,
                        held_out_ids=None) -> dict:
    """Run ``tasks`` on every feature set; write ``out/metrics.json`` (and report.html with its PNGs).

    The first feature set is the representation under test, the others its baselines. Without test inputs
    a seeded split of the common objects holds out ``options.test_fraction`` of them; with
    ``test_feature_sets`` (same names) and ``test_labels`` those are the held-out objects.
    ``held_out_ids`` fixes the held-out objects instead of the seeded split (e.g. those a pretraining run
    never saw). ``log`` (e.g. ``print``) receives a line as each task starts. Returns the metrics dictionary (NaN
    written as null).
    """
    log = log or (lambda message: None)
    options = options or EvaluateOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids, X, y, summary = align(feature_sets, labels, options.join_radius_arcsec)
    if test_feature_sets is None and held_out_ids is not None:
        held = np.isin(ids, np.asarray(held_out_ids).astype(str))
        data, split = _Aligned(ids, X, y, np.flatnonzero(~held), np.flatnonzero(held)), "given held-out ids"
    elif test_feature_sets is None:
        train, test = split_indices(len(ids), options.test_fraction, options.seed)
        data, split = _Aligned(ids, X, y, train, test), "seeded"
    else:
        t_ids, t_X, t_y, _ = align(test_feature_sets, test_labels or labels, options.join_radius_arcsec)
        n = len(ids)
        data = _Aligned(np.r_[ids, t_ids], {k: np.r_[X[k], t_X[k]] for k in X},
                        {c: np.r_[y[c], t_y[c]] for c in y}, np.arange(n), np.arange(n, n + len(t_ids)))
        split = "given"
    for fs in feature_sets:
        if fs.transform is not None:  # e.g. PCA of pixels: learned from the training objects only
            from sklearn.base import clone

            transform = clone(fs.transform)
            n_components = getattr(transform, "n_components", None)
            if isinstance(n_components, int) and n_components > len(data.train):  # PCA: at most one per object
                transform.set_params(n_components=len(data.train))
            data.X[fs.name] = transform.fit(data.X[fs.name][data.train]).transform(data.X[fs.name])
    artefacts: dict = {"data": data, "survey": labels.extra.get("survey"),
                       "image_folder": labels.extra.get("image_folder"), "log": log}
    if ((options.supervised_steps > 0 or options.supervised_minutes > 0) and artefacts["survey"] is None
            and artefacts["image_folder"] is None):
        raise ValueError("the supervised baseline (--supervised-steps / --supervised-minutes) trains on the images "
                         "or spectra of an MMU survey or on a folder of JPEG/PNG cutouts: give one as --labels "
                         "(or as --data with --model)")
    results = {}
    log(f"{len(data.object_ids)} objects ({len(data.train)} train, {len(data.test)} held out), "
        f"{len(data.X)} feature sets: {', '.join(data.X)}")
    for task in tasks:
        log(f"task {task.key}")
        if task.target is not None and task.target not in data.labels:
            raise InvalidDataError(f"no label column {task.target!r}", source=labels.source, field=task.target)
        if task.kind in ("regression", "photo-z", "classification"):
            results[task.key] = _supervised(data, task, options, artefacts)
        elif task.kind == "retrieval":
            results[task.key] = _retrieval(data, task, options)
        elif task.kind == "posterior":
            results[task.key] = _posterior(data, task, options, artefacts)
        else:
            results[task.key] = _anomaly(data, options, out, artefacts)
        results[task.key].update(kind=task.kind, target=task.target)
    metrics = _jsonable({
        "schema": SCHEMA, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "options": asdict(options),
        "inputs": {"labels": labels.source, "feature_sets": summary, "n_objects": len(data.object_ids),
                   "n_train": len(data.train), "n_test": len(data.test), "split": split},
        "tasks": results})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if report:
        from .report import write_report

        log("report")
        write_report(metrics, artefacts, out)
    return metrics
