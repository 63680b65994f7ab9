"""`astroembed evaluate`, `anomalies`, `demo`, `serve`: what the embeddings are worth, and exploring them."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from .base import app, console, fail, require


@app.command()
def evaluate(
    embeddings: Optional[Path] = typer.Option(None, "--embeddings", help="Embedding catalogue folder, or a "
                                              "catalogue file with --features."),
    model: Optional[Path] = typer.Option(None, "--model", help="Embed --data with this model first (instead of "
                                         "--embeddings)."),
    data: Optional[Path] = typer.Option(None, "--data", help="MMU survey, or folder of JPEG/PNG cutouts, to embed "
                                        "with --model (default labels); the supervised baselines train on it."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="MMU survey, folder of cutouts (column 'class': "
                                          "the sub-folder) or catalogue with the label columns (default: --data, "
                                          "or the --embeddings catalogue itself)."),
    tasks: str = typer.Option(..., "--tasks", help="Comma-separated KIND:COLUMN: regression, classification, "
                              "photo-z, retrieval, posterior; and anomaly (no column)."),
    out: Path = typer.Option(..., "--out", help="Report folder: metrics.json, report.html, PNGs."),
    features: Optional[str] = typer.Option(None, "--features", help="Feature columns of a catalogue, e.g. u,g,r,i,z."),
    column_names: Optional[str] = typer.Option(None, "--column-names", help="Names of a text catalogue's columns "
                                               "when its header is missing or wrong."),
    baseline: List[str] = typer.Option([], "--baseline", help="NAME=PATH (embedding catalogue), NAME=PATH#cols, "
                                       "or pca_pixels / pca_flux / photometry (from the --labels survey)."),
    test_embeddings: Optional[Path] = typer.Option(None, "--test-embeddings", help="Held-out objects (no split)."),
    test_labels: Optional[Path] = typer.Option(None, "--test-labels", help="Labels of the held-out objects."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the evaluated representation in the tables."),
    modality: Optional[str] = typer.Option(None, "--modality", help="Embedding column: image or spectrum."),
    probes: str = typer.Option("knn,linear,mlp", "--probes", help="Probes to fit."),
    cross_modal: List[str] = typer.Option([], "--cross-modal", help="QUERY:BASE feature-set names for retrieval."),
    seed: int = typer.Option(0, "--seed"),
    test_fraction: float = typer.Option(0.3, "--test-fraction"),
    bootstrap: int = typer.Option(300, "--bootstrap", help="Bootstrap resamples of each interval."),
    label_fractions: Optional[str] = typer.Option(None, "--label-fractions", help="Points of the label-efficiency "
                                                  "curves: increasing fractions of the training labels in (0, 1], "
                                                  "nested subsets; none: no curves [default: 0.01,0.03,0.1,0.3,1]."),
    no_report: bool = typer.Option(False, "--no-report", help="metrics.json only."),
    supervised_steps: int = typer.Option(0, "--supervised-steps", help="Also train a network from scratch on "
                                         "the labels (images: the image encoder; spectra: a 1-D CNN) for this "
                                         "many steps per fit (needs an MMU survey or a folder of cutouts as "
                                         "--data or --labels)."),
    supervised_minutes: float = typer.Option(0.0, "--supervised-minutes", help="Wall-clock budget of each "
                                             "from-scratch fit (with --supervised-steps: whichever ends first)."),
    supervised_modalities: Optional[str] = typer.Option(None, "--supervised-modalities", help="image,spectrum "
                                                        "(default: every one the survey has)."),
    device: str = typer.Option("auto", "--device", help="Device of the from-scratch networks: auto, cpu, cuda."),
):
    """Downstream science of an embedding: probes, baselines, posteriors, anomalies and a report."""
    from ..data.records import InvalidDataError
    from ..evaluate.command import embed_for_evaluation, evaluate_paths
    from ..evaluate.runner import EvaluateOptions
    from ..evaluate.tasks import parse_label_fractions

    try:
        if (embeddings is None) == (model is None) or (model is not None and data is None):
            raise ValueError("give --embeddings, or --model with --data")
        # options are checked before the (possibly long) embedding
        options = EvaluateOptions(seed=seed, test_fraction=test_fraction, n_bootstrap=bootstrap,
                                  probes=tuple(p for p in probes.split(",") if p),
                                  **({} if label_fractions is None
                                     else {"label_fractions": parse_label_fractions(label_fractions)}),
                                  cross_modal=tuple(tuple(c.split(":", 1)) for c in cross_modal),
                                  knn_metric="euclidean" if features else "cosine",
                                  supervised_steps=supervised_steps, supervised_minutes=supervised_minutes,
                                  supervised_modalities=tuple(m for m in (supervised_modalities or "").split(",") if m),
                                  device=device)
        if model is not None:
            embeddings, labels = embed_for_evaluation(model, data, out, modality or "auto"), labels or data
        evaluate_paths(embeddings, labels, tasks, out, features.split(",") if features else None, name, baseline,
                       test_embeddings, test_labels, modality, options, report=not no_report,
                       column_names=column_names.split(",") if column_names else None, log=console.print,
                       data=data if model is not None else None)
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    console.print(f"wrote {out / 'metrics.json'}" + ("" if no_report else f" and {out / 'report.html'}"))


@app.command()
def anomalies(
    embeddings: Path = typer.Option(..., "--embeddings", help="Embedding catalogue folder to rank."),
    out: Path = typer.Option(..., "--out", help="Parquet file of object_id, ra, dec and the anomaly columns."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Embeddings of normal objects "
                                             "(default: rank the catalogue against itself)."),
    k: int = typer.Option(10, "--k", help="Neighbours of the k-NN distance."),
    seed: int = typer.Option(0, "--seed"),
    data: Optional[Path] = typer.Option(None, "--data", help="MMU survey with the objects' cutouts: adds the "
                                        "pixel-quality test (cosmic rays, hot columns, trails, saturation, blank "
                                        "sky) and the combined anomaly_pvalue."),
):
    """Rank a catalogue by strangeness: k-NN distance with a calibrated p-value, IsolationForest, and (with
    --data) artefacts read from the pixels; anomaly_rank follows the combined anomaly_pvalue."""
    from ..data.records import InvalidDataError
    from ..evaluate.anomaly import write_anomalies

    try:
        path = write_anomalies(embeddings, out, reference, k=k, seed=seed, data=data)
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    console.print(f"wrote {path} (most anomalous first; filter on anomaly_pvalue or anomaly_rank)")


@app.command()
def demo(out: Path = typer.Option(Path("demo_output"), "--out", help="Working folder of the demo."),
         n: int = typer.Option(2000, "--n", help="Galaxies in the built-in survey."),
         seed: int = typer.Option(0, "--seed"),
         image_minutes: float = typer.Option(5.0, "--image-minutes", help="Budget of the image pretraining stage."),
         spectrum_minutes: float = typer.Option(2.0, "--spectrum-minutes", help="Budget of the spectrum "
                                                "pretraining stage."),
         minutes: Optional[float] = typer.Option(None, "--minutes", help="Set both budgets at once (the "
                                                 "alignment trains heads on frozen features, in seconds).")):
    """The main job: every stage of the pipeline that exists, on the built-in survey."""
    require("survey", "train", "evaluate", feature="the main job (astroembed demo)")
    from ..pipeline import DemoFolderError, run_demo

    if minutes is not None:
        image_minutes = spectrum_minutes = minutes
    try:
        # Defaults (BENCHMARKS.md, "The main job's alignment"): cross-modal retrieval gains from image steps
        # (543 -> 900 steps: top-1 % 0.38 -> 0.41) and not from spectrum steps (330 or 575: 0.39 / 0.38).
        run_demo(out=out, n=n, seed=seed, console=Console(), image_minutes=image_minutes,
                 spectrum_minutes=spectrum_minutes, clip_minutes=2 * max(image_minutes, spectrum_minutes) / 3)
    except DemoFolderError as exc:
        fail(exc)


@app.command()
def serve(
    index_dir: Path = typer.Option(..., "--index", help="Index folder (astroembed index)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Survey for pictures and labels (default: the one "
                                        "the catalogue was embedded from)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Picture cache folder (default: beside the index)."),
    cors_origin: List[str] = typer.Option([], "--cors-origin", help="Allow API calls from this origin (CORS)."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Largest query file accepted."),
):
    """Web app: explore a catalogue, search it by example within and across modalities, and by upload."""
    require("app", feature="astroembed serve")
    from ..app.server import serve as run_server
    from ..data.records import InvalidDataError

    try:
        run_server(index_dir, data, host=host, port=port, cache_dir=cache, cors_origins=cors_origin,
                   max_upload_mb=max_upload_mb)
    except (InvalidDataError, FileNotFoundError) as exc:
        fail(exc)
