"""report.html: one self-contained page (PNGs embedded as base64, no scripts, no network) that a person
reads offline, with AstroCLIP-style tables (rows: representation and probe; columns: metrics with
95 % bootstrap intervals) and the figures of :mod:`astroembed.evaluate.plots`, which are also left
beside it as PNG files.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from . import plots
from .tasks import PRIMARY_METRIC
from .vectors import unit_rows

__all__ = ["write_report"]

CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px}
th{background:#eee}td.num{text-align:right}.ci{color:#777;font-size:11px}img{max-width:100%}
.note{background:#fff6d5;padding:6px 10px;border-left:4px solid #e0b000}"""


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4g}"


def _cell(metrics: dict, intervals: dict, key: str) -> str:
    interval = intervals.get(key)
    ci = (f"<br><span class=ci>[{_fmt(interval[0])}, {_fmt(interval[1])}]</span>"
          if interval and interval[0] is not None else "")
    return f"<td class=num>{_fmt(metrics.get(key))}{ci}</td>"


def _table(rows: list[tuple[str, str, dict, dict]], keys: list[str]) -> str:
    head = "<tr><th>representation</th><th>probe</th>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td>"
                   + "".join(_cell(m, i, k) for k in keys) + "</tr>" for a, b, m, i in rows)
    return f"<table>{head}</tr>{body}</table>"


def _image(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<p><img alt="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}"></p>'


def _random_init_note(task: dict) -> str:
    """Say it plainly when the randomly initialised network does as well as the pretrained one."""
    results = task["results"]
    random_names = [n for n in results if "random" in n]
    first = next(iter(results))
    if not random_names or "knn" not in results[first]:
        return ""
    key, higher_is_better = PRIMARY_METRIC[task["kind"]]
    better_low = not higher_is_better
    ours, theirs = results[first]["knn"]["metrics"][key], results[random_names[0]]["knn"]["metrics"][key]
    if ours is None or theirs is None or (ours < theirs if better_low else ours > theirs):
        return ""
    return (f"<p class=note>Pretraining does not beat random initialisation here: k-NN {key} {ours:.4g} "
            f"({html.escape(first)}) vs {theirs:.4g} ({html.escape(random_names[0])}).</p>")


def _supervised_section(key: str, task: dict, artefacts: dict, out: Path) -> str:
    rows = [(name, probe, r["metrics"], r["intervals"]) for name, by_probe in task["results"].items()
            for probe, r in by_probe.items()]
    keys = list(rows[0][2]) if rows else []
    parts = [_random_init_note(task), _table(rows, keys)]
    predictions = artefacts.get("predictions", {}).get(key)
    if predictions and task["kind"] != "classification":
        parts.append(_image(plots.predicted_vs_true(task, predictions, out / f"{plots.safe_name(key)}_pred.png")))
    if task.get("label_efficiency"):
        parts.append(_image(plots.label_efficiency_curves(task, out / f"{plots.safe_name(key)}_efficiency.png")))
    return "".join(parts)


def _retrieval_section(task: dict) -> str:
    rows = []
    for name, r in task["results"].items():
        rows.append((name, f"cosine top-{r['k']}", r["metrics"], r["intervals"]))
        rows.append((name, "random ranking", r["chance"], {}))
    relevance = next(iter(task["results"].values()))["relevance"] if task["results"] else ""
    return f"<p>relevant: {html.escape(relevance)}</p>" + _table(rows, list(rows[0][2]) if rows else [])


def _posterior_section(key: str, task: dict, artefacts: dict, out: Path) -> str:
    rows = [(name, model, {"nll": r["nll"], "coverage 68 %": r["coverage"]["68"][0],
                           "coverage 95 %": r["coverage"]["95"][0]}, {})
            for name, models in task["results"].items() for model, r in models.items()]
    parts = [_table(rows, ["nll", "coverage 68 %", "coverage 95 %"])]
    pits = artefacts.get("pit", {}).get(key)
    if pits:
        parts.append(_image(plots.pit_histograms(task, pits, out / f"{plots.safe_name(key)}_pit.png")))
    return "".join(parts)


def _survey_images(survey, object_ids) -> list[np.ndarray] | None:
    """Cutouts of ``object_ids`` from the labels' survey, or None when it has no images."""
    if survey is None or "image_array" not in survey.columns:
        return None
    return [survey.get(str(o)).image.flux for o in object_ids]


def _survey_spectra(survey, object_ids) -> list[tuple] | None:
    """(wavelength, flux, good pixels) of ``object_ids`` from the labels' survey, or None without spectra."""
    if survey is None or "spectrum_flux" not in survey.columns:
        return None
    spectra = [survey.get(str(o)).spectrum for o in object_ids]
    if any(s is None for s in spectra):
        return None
    return [(s.wavelength, s.flux, np.ones(len(s.flux), bool) if s.mask is None else s.mask) for s in spectra]


def _anomaly_gallery(name: str, columns: dict, artefacts: dict, out: Path, n: int = 8) -> str:
    ids = artefacts["data"].object_ids
    top = np.argsort(columns["anomaly_rank"])[:n]
    typical = np.argsort(columns["anomaly_rank"])[len(ids) // 2:len(ids) // 2 + n]
    survey, parts = artefacts.get("survey"), []
    images = _survey_images(survey, ids[np.r_[top, typical]])
    if images is not None:
        rows = [("most anomalous", [(f"#{columns['anomaly_rank'][i]} {ids[i]}", im) for i, im in zip(top, images)]),
                ("median rank", [(f"#{columns['anomaly_rank'][i]}", im) for i, im in zip(typical, images[n:])])]
        parts.append(_image(plots.cutout_gallery(rows, out / f"anomalies_{plots.safe_name(name)}_gallery.png")))
    spectra = _survey_spectra(survey, ids[np.r_[top[:4], typical[:3]]])
    if spectra is not None:  # each anomaly's spectrum over three of median rank: what sets it apart
        rows = [(f"#{columns['anomaly_rank'][i]} {ids[i]} (black) over median-rank objects", spectra[j],
                 [(f"#{columns['anomaly_rank'][t]}", *spectra[4 + k]) for k, t in enumerate(typical[:3])])
                for j, i in enumerate(top[:4])]
        parts.append(_image(plots.spectrum_overlays(rows, out / f"anomalies_{plots.safe_name(name)}_spectra.png",
                                                    query_label="anomaly")))
    return "".join(parts)


def _retrieval_gallery(key: str, artefacts: dict, out: Path, n_queries: int = 4, k: int = 5) -> str:
    """Held-out queries and their nearest training objects (cosine) in the first feature set, as cutouts."""
    from sklearn.neighbors import NearestNeighbors

    data, survey = artefacts["data"], artefacts.get("survey")
    if survey is None or not {"image_array", "spectrum_flux"} & set(survey.columns):
        return ""
    name = next(iter(data.X))
    base = unit_rows(data.X[name][data.train])
    queries = data.test[:n_queries]
    nearest = NearestNeighbors(n_neighbors=k).fit(base).kneighbors(unit_rows(data.X[name][queries]),
                                                                   return_distance=False)
    target = artefacts.get("retrieval_target")
    label = (lambda i: f" {target}={data.labels[target][i]:.3g}") if target else (lambda i: "")
    rows, overlays = [], []
    for q, found in zip(queries, nearest):
        ids = [data.object_ids[q]] + [data.object_ids[data.train[j]] for j in found]
        captions = [f"query{label(q)}"] + [f"{j + 1}{label(data.train[f])}" for j, f in enumerate(found)]
        images, spectra = _survey_images(survey, ids), _survey_spectra(survey, ids)
        if images is not None:
            rows.append((str(ids[0]), list(zip(captions, images))))
        if spectra is not None:  # the neighbours' spectra over the query's
            overlays.append((f"{ids[0]}: {captions[0]}", spectra[0], [(c, *s) for c, s in zip(captions[1:3],
                                                                                         spectra[1:3])]))
    parts = [f"<p>{html.escape(name)}: held-out queries and their nearest training objects</p>"]
    if rows:
        parts.append(_image(plots.cutout_gallery(rows, out / f"{plots.safe_name(key)}_gallery.png")))
    if overlays:
        parts.append(_image(plots.spectrum_overlays(overlays, out / f"{plots.safe_name(key)}_spectra.png")))
    return "".join(parts)


def _anomaly_section(task: dict, artefacts: dict, out: Path) -> str:
    parts = []
    for name, r in task["results"].items():
        below = r["held_out_fraction_below"]
        parts.append(f"<p><b>{html.escape(name)}</b>: held-out objects with p-value below 0.01 / 0.05 / 0.1: "
                     f"{_fmt(below['0.01'])} / {_fmt(below['0.05'])} / {_fmt(below['0.1'])} (calibrated: about "
                     f"equal to the level). Ranking: <code>{html.escape(r['anomalies'])}</code></p>")
        if "pixel_held_out_fraction_below" in r:
            pixel, combined = r["pixel_held_out_fraction_below"], r["combined_held_out_fraction_below"]
            parts.append(f"<p>Pixel-quality p-values (cosmic rays, hot columns, trails, saturation, blank sky, from "
                         f"the cutouts) below 0.01 / 0.05 / 0.1: {_fmt(pixel['0.01'])} / {_fmt(pixel['0.05'])} / "
                         f"{_fmt(pixel['0.1'])}; combined (Bonferroni of the two): {_fmt(combined['0.01'])} / "
                         f"{_fmt(combined['0.05'])} / {_fmt(combined['0.1'])}. The gallery and the ranking follow "
                         f"the combined p-value.</p>")
        columns = artefacts.get("anomalies", {}).get(name)
        if columns is not None:
            path = out / f"anomalies_{plots.safe_name(name)}.png"
            parts.append(_image(plots.anomaly_overview(columns, artefacts["data"].object_ids, path)))
            parts.append(_anomaly_gallery(name, columns, artefacts, out))
    return "".join(parts)


def _umap_section(metrics: dict, artefacts: dict, out: Path) -> str:
    data = artefacts["data"]
    first = next(iter(data.X))
    colours = {}
    for task in metrics["tasks"].values():
        if task["target"] and task["target"] not in colours:
            values = data.labels[task["target"]]
            numeric = task["kind"] != "classification" and np.issubdtype(values.dtype, np.number)
            colours[task["target"]] = values.astype(np.float64) if numeric else values.astype(str)
    path = plots.umap_map(data.X[first], colours, out / "umap.png", seed=metrics["options"]["seed"])
    return f"<h2>Map of {html.escape(first)} (UMAP)</h2>" + _image(path)


def write_report(metrics: dict, artefacts: dict, out) -> Path:
    """Write report.html (and its PNGs) into ``out``."""
    out = Path(out)
    inputs = metrics["inputs"]
    sets = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(s['source'])} (dim {s['dim']}, join by "
                   f"{html.escape(s['join'])}, {s['n_dropped']} rows dropped)</li>"
                   for n, s in inputs["feature_sets"].items())
    parts = [f"<h1>astroembed evaluate</h1><p>{inputs['n_objects']} objects: {inputs['n_train']} train, "
             f"{inputs['n_test']} held out ({inputs['split']} split, seed {metrics['options']['seed']}); "
             f"labels from {html.escape(inputs['labels'])}. Intervals: 95 % bootstrap over held-out objects."
             f"</p><ul>{sets}</ul>"]
    for key, task in metrics["tasks"].items():
        parts.append(f"<h2>{html.escape(key)}</h2><p>{task['n_train']} train / {task['n_test']} held out</p>")
        if task["kind"] in ("regression", "photo-z", "classification"):
            parts.append(_supervised_section(key, task, artefacts, out))
        elif task["kind"] == "retrieval":
            parts.append(_retrieval_section(task))
            artefacts["retrieval_target"] = task["target"]
            parts.append(_retrieval_gallery(key, artefacts, out))
        elif task["kind"] == "posterior":
            parts.append(_posterior_section(key, task, artefacts, out))
        else:
            parts.append(_anomaly_section(task, artefacts, out))
    parts.append(_umap_section(metrics, artefacts, out))
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>astroembed evaluate</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}<p class=ci>{metrics['created']}, schema "
            f"{metrics['schema']}</p></body></html>")
    path = out / "report.html"
    path.write_text(page)
    return path
