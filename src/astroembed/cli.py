"""The `astroembed` command. Each subcommand is a thin shell over the Python API; heavy imports are lazy
so that `astroembed --help` is instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import typer
from rich.console import Console

from .cli_errors import ReportingGroup

# ReportingGroup turns every command's expected failures into one line on stderr (cli_errors.py).
app = typer.Typer(add_completion=False, no_args_is_help=True, cls=ReportingGroup,
                  help="Foundation-model embeddings of galaxies: data, pretraining, embedding, search.")
console = Console(stderr=True)


@app.callback()
def _process_settings(
    debug: bool = typer.Option(False, "--debug", envvar="ASTROEMBED_DEBUG",
                               help="Show the full traceback of any failure (for bug reports)."),
) -> None:
    """Foundation-model embeddings of galaxies: data, pretraining, embedding, search."""
    from astroembed.runtime import keep_freed_memory

    keep_freed_memory()  # every command: faster CPU tensor work (astroembed/runtime.py)


def _fail(exc: Exception) -> None:
    """Bad input ends the command: ReportingGroup prints it as one line (a traceback with --debug)."""
    raise exc


def _require(*extras: str, feature: str) -> None:
    """End the command with one line naming the extra to install when a feature's packages are missing."""
    from .optional import MissingDependencyError, require_extra

    try:
        for extra in extras:
            require_extra(extra, feature)
    except MissingDependencyError as exc:
        _fail(exc)


def _print_json(obj) -> None:
    """Print strict JSON: a missing value (NaN, e.g. the separation of an object without a position) is null."""
    import math

    def strict(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: strict(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [strict(v) for v in value]
        return value

    print(json.dumps(strict(obj), indent=2, allow_nan=False, default=str))


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="Root folder of the MMU layout to write."),
    n: int = typer.Option(1000, "--n", min=1, max=10000, help="Number of galaxies (1 to 10,000)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same survey."),
    image_size: int = typer.Option(96, "--image-size", help="Cutout side in pixels."),
    workers: int = typer.Option(2, "--workers", help="Processes used to render."),
):
    """Render the built-in survey: images and spectra of real SDSS galaxies (see README)."""
    _require("survey", feature="the built-in survey")
    from .data.records import InvalidDataError
    from .data.simulate import simulate_survey

    try:
        path = simulate_survey(n=n, seed=seed, out=out, image_size=image_size, workers=workers)
    except (InvalidDataError, ValueError) as exc:
        _fail(exc)
    console.print(f"wrote {n} galaxies to {path}")


@app.command()
def info(path: Path = typer.Argument(..., help="An MMU tile, or a folder of tiles."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")):
    """Summarise a survey: objects per modality, bands, sizes, wavelengths, labels, invalid values."""
    from .data.info import print_summary, summarize
    from .data.records import InvalidDataError

    try:
        summary = summarize(path)
    except InvalidDataError as exc:
        _fail(exc)
    if as_json:
        _print_json(summary)
        return
    print_summary(summary)


@app.command()
def convert(
    inputs: List[Path] = typer.Argument(..., help="Files, folders (searched recursively) or quoted globs: "
                                               "SDSS/DESI spectra, FITS cutouts, JPEG/PNG images, catalogues."),
    out: Path = typer.Option(..., "--out", help="Root folder of the MMU layout to write."),
    survey: str = typer.Option("converted", "--survey", help="Survey name (first level of the layout)."),
    config: str = typer.Option("default", "--config", help="Config name (second level of the layout)."),
    if_exists: str = typer.Option("append", "--if-exists",
                                  help="A survey already at --out/--survey/--config: append (new ids only) "
                                       "or error. Nothing written before is replaced."),
):
    """Convert files of the field's formats into the Multimodal Universe HDF5 layout; each file's kind is
    read from its content, and files in folders that cannot be converted are skipped and listed with why."""
    from .data.convert import convert as convert_inputs
    from .data.records import InvalidDataError

    try:
        report = convert_inputs(inputs, out, survey=survey, config=config, if_exists=if_exists)
    except InvalidDataError as exc:
        _fail(exc)
    Console(stderr=True, highlight=False, soft_wrap=True).print(report.summary(), markup=False)


pretrain_app = typer.Typer(no_args_is_help=True, help="Self-supervised pretraining stages.")
app.add_typer(pretrain_app, name="pretrain")


CONFIG_HELP = ("A shipped config by name (astroembed/configs: image_simclr_cpu, spectrum_masked_cpu, clip_cpu, ...) "
               "or a YAML file.")

# The run settings every pretraining stage takes (RunConfig fields); declared once, shared by the commands.
RUN_OPTIONS = {
    "max_minutes": typer.Option(None, "--max-minutes", help="Wall-clock budget."),
    "max_epochs": typer.Option(None, "--max-epochs"),
    "max_steps": typer.Option(None, "--max-steps"),
    "batch_size": typer.Option(None, "--batch-size"),
    "device": typer.Option(None, "--device", help="auto, cpu, cuda."),
    "devices": typer.Option(None, "--devices", help="Processes/GPUs (DDP when > 1)."),
    "strategy": typer.Option(None, "--strategy", help="auto, ddp, ddp_spawn."),
    "precision": typer.Option(None, "--precision", help="auto (bf16-mixed where the CPU/GPU has bf16 units, "
                              "else 32-true), 32-true, bf16-mixed."),
    "num_workers": typer.Option(None, "--num-workers"),
    "seed": typer.Option(None, "--seed"),
}


def _pretrain(config_cls, run_stage, config: Optional[str], overrides: dict, arguments: dict, what: str) -> None:
    """Load a stage config (YAML + command-line overrides; run settings go under ``run.``), run it, report."""
    _require("train", feature="pretraining")
    from .data.records import InvalidDataError
    from .config import load_yaml_config

    overrides = {**overrides, **{f"run.{k}": arguments[k] for k in RUN_OPTIONS if arguments[k] is not None}}
    try:
        model_dir = run_stage(load_yaml_config(config_cls, config, overrides))
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    console.print(f"exported {what} to {model_dir}")


@pretrain_app.command("image")
def pretrain_image_cmd(
    data: Path = typer.Option(..., "--data", help="MMU survey folder, or a folder of JPEG/PNG cutouts."),
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoints, logs, exported model)."),
    config: Optional[str] = typer.Option(None, "--config", help=CONFIG_HELP),
    method: Optional[str] = typer.Option(None, "--method", help="simclr, moco or byol."),
    arch: Optional[str] = typer.Option(None, "--arch", help="small_cnn, resnet18, resnet50, vit_s8."),
    max_minutes: Optional[float] = RUN_OPTIONS["max_minutes"],
    max_epochs: Optional[int] = RUN_OPTIONS["max_epochs"],
    max_steps: Optional[int] = RUN_OPTIONS["max_steps"],
    batch_size: Optional[int] = RUN_OPTIONS["batch_size"],
    device: Optional[str] = RUN_OPTIONS["device"],
    devices: Optional[int] = RUN_OPTIONS["devices"],
    strategy: Optional[str] = RUN_OPTIONS["strategy"],
    precision: Optional[str] = RUN_OPTIONS["precision"],
    num_workers: Optional[int] = RUN_OPTIONS["num_workers"],
    seed: Optional[int] = RUN_OPTIONS["seed"],
):
    """Pretrain an image encoder (SimCLR / MoCo v2 / BYOL) with astrophysical augmentations."""
    from .train.image import ImagePretrainConfig, pretrain_image

    overrides = {"data": str(data), "out": str(out), "method": method, "encoder.arch": arch}
    _pretrain(ImagePretrainConfig, pretrain_image, config, overrides, locals(), "image encoder")


@pretrain_app.command("spectrum")
def pretrain_spectrum_cmd(
    data: Path = typer.Option(..., "--data", help="MMU survey folder (or tile) with spectra, any grid."),
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoints, logs, exported model)."),
    config: Optional[str] = typer.Option(None, "--config", help=CONFIG_HELP),
    dim: Optional[int] = typer.Option(None, "--dim", help="Transformer width."),
    depth: Optional[int] = typer.Option(None, "--depth", help="Transformer blocks."),
    wave_step: Optional[float] = typer.Option(None, "--wave-step", help="Model grid step in Angstrom."),
    max_minutes: Optional[float] = RUN_OPTIONS["max_minutes"],
    max_epochs: Optional[int] = RUN_OPTIONS["max_epochs"],
    max_steps: Optional[int] = RUN_OPTIONS["max_steps"],
    batch_size: Optional[int] = RUN_OPTIONS["batch_size"],
    device: Optional[str] = RUN_OPTIONS["device"],
    devices: Optional[int] = RUN_OPTIONS["devices"],
    strategy: Optional[str] = RUN_OPTIONS["strategy"],
    precision: Optional[str] = RUN_OPTIONS["precision"],
    num_workers: Optional[int] = RUN_OPTIONS["num_workers"],
    seed: Optional[int] = RUN_OPTIONS["seed"],
):
    """Pretrain a spectrum transformer by masked modelling (AstroCLIP's spectrum stage)."""
    from .train.spectrum import SpectrumPretrainConfig, pretrain_spectrum

    overrides = {"data": str(data), "out": str(out), "model.dim": dim, "model.depth": depth,
                 "preprocess.wave_step": wave_step}
    _pretrain(SpectrumPretrainConfig, pretrain_spectrum, config, overrides, locals(), "spectrum encoder")


@pretrain_app.command("clip")
def pretrain_clip_cmd(
    image_model: Path = typer.Option(..., "--image-model", help="Exported image encoder (RUN/model)."),
    spectrum_model: Path = typer.Option(..., "--spectrum-model", help="Exported spectrum encoder (RUN/model)."),
    data: Path = typer.Option(..., "--data", help="MMU survey folder with both images and spectra."),
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoints, logs, exported model)."),
    config: Optional[str] = typer.Option(None, "--config", help=CONFIG_HELP),
    embed_dim: Optional[int] = typer.Option(None, "--embed-dim", help="Size of the shared space."),
    freeze_image: Optional[bool] = typer.Option(None, "--freeze-image/--train-image",
                                                help="Keep the image encoder fixed (default: fine-tune)."),
    freeze_spectrum: Optional[bool] = typer.Option(None, "--freeze-spectrum/--train-spectrum",
                                                   help="Keep the spectrum encoder fixed (default: fine-tune)."),
    max_minutes: Optional[float] = RUN_OPTIONS["max_minutes"],
    max_epochs: Optional[int] = RUN_OPTIONS["max_epochs"],
    max_steps: Optional[int] = RUN_OPTIONS["max_steps"],
    batch_size: Optional[int] = RUN_OPTIONS["batch_size"],
    device: Optional[str] = RUN_OPTIONS["device"],
    devices: Optional[int] = RUN_OPTIONS["devices"],
    strategy: Optional[str] = RUN_OPTIONS["strategy"],
    precision: Optional[str] = RUN_OPTIONS["precision"],
    num_workers: Optional[int] = RUN_OPTIONS["num_workers"],
    seed: Optional[int] = RUN_OPTIONS["seed"],
):
    """Align an image and a spectrum encoder in one space with CLIP (AstroCLIP)."""
    from .train.clip import CLIPConfig, pretrain_clip

    overrides = {"image_model": str(image_model), "spectrum_model": str(spectrum_model), "data": str(data),
                 "out": str(out), "embed_dim": embed_dim, "freeze_image": freeze_image,
                 "freeze_spectrum": freeze_spectrum}
    _pretrain(CLIPConfig, pretrain_clip, config, overrides, locals(), "aligned model")


@app.command()
def augment(
    data: Path = typer.Option(..., "--data", help="MMU survey folder, or a folder of JPEG/PNG cutouts."),
    show: Path = typer.Option(..., "--show", help="PNG to write: originals and augmented views."),
    n: int = typer.Option(4, "--n", min=1, help="Galaxies (rows)."),
    views: int = typer.Option(6, "--views", min=1, help="Augmented views per galaxy."),
    seed: int = typer.Option(0, "--seed"),
):
    """Draw a grid of augmented views a person can look at."""
    _require("train", feature="augment --show")
    import numpy as np

    from .augment.grid import draw_augmentation_grid
    from .augment.image import ImageAugmentConfig, ImageAugmenter
    from .data.records import InvalidDataError
    from .train.data import image_dataset

    try:
        dataset, bands, _, physical = image_dataset(data, None)
        idx = np.random.default_rng(seed).choice(len(dataset), size=min(n, len(dataset)), replace=False)
        samples = [dataset[int(i)] for i in idx]
        flux = np.stack([np.asarray(s["image"]) for s in samples])
        ivar = np.stack([s["image_ivar"] for s in samples]) if physical and all(
            s.get("image_has_ivar", False) for s in samples) else None
        psf = np.stack([s["psf_fwhm"] for s in samples]) if physical else None
        scale = float(samples[0].get("pixel_scale", 0.262)) if physical else 0.262
        augmenter = ImageAugmenter(ImageAugmentConfig(physical=physical,
                                                      crop_size=min(64, flux.shape[-1])))
        draw_augmentation_grid(flux, bands, show, augmenter, n_views=views, ivar=ivar, psf_fwhm=psf,
                               pixel_scale=scale, seed=seed)
    except (InvalidDataError, ValueError) as exc:
        _fail(exc)
    console.print(f"wrote {show}")


@app.command()
def embed(
    model: Path = typer.Option(..., "--model", help="Exported model folder (config.json + model.safetensors) "
                               "or its run folder."),
    data: Path = typer.Option(..., "--data", help="MMU survey: a tile file or a folder of healpix=<N> tiles."),
    out: Path = typer.Option(..., "--out", help="Output folder of the Parquet embeddings (one part per tile)."),
    modality: str = typer.Option("auto", "--modality", help="image, spectrum, or auto (what the model embeds)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 autocast where the CPU/GPU has bf16 "
                                  "units, else 32-bit), 32-true, bf16-mixed. Embeddings are float32 either way."),
    batch_size: int = typer.Option(256, "--batch-size", help="Objects per forward pass."),
    num_workers: int = typer.Option(0, "--num-workers", help="Reader processes (single-process run only)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Re-embed tiles already written (e.g. by another model)."),
    dask_address: Optional[str] = typer.Option(None, "--dask-address", help="Scheduler of a running Dask cluster."),
    dask_workers: Optional[int] = typer.Option(None, "--dask-workers",
                                               help="Start a local Dask cluster of N processes."),
    bands_as: Optional[str] = typer.Option(None, "--bands-as", help="Declare the image planes, in order, to be "
                                           "these bands (e.g. g,r,z for u,g,r cutouts through a g,r,z model)."),
):
    """Embed every object of a survey into Parquet beside the catalogue; a rerun resumes."""
    from .data.records import InvalidDataError
    from .embed import EmbedConfig, embed_catalog, embed_catalog_dask, read_metadata

    if dask_address and dask_workers:
        _fail(ValueError("give --dask-address or --dask-workers, not both"))
    if dask_address or dask_workers:
        _require("dask", feature="distributed embedding")
    try:
        config = EmbedConfig(model=str(model), data=str(data), out=str(out), modality=modality, device=device,
                             precision=precision, batch_size=batch_size, num_workers=num_workers, overwrite=overwrite,
                             bands_as=bands_as.split(",") if bands_as else None)
        if dask_address or dask_workers:
            path = embed_catalog_dask(config, dask_address, n_workers=dask_workers or 2)
        else:
            path = embed_catalog(config)
        meta = read_metadata(path)
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    console.print(f"wrote {meta['modality']} embeddings (dim {meta['embed_dim']}, model {meta['model_name']} "
                  f"{meta['model_hash'][:12]}) for {meta['n_parts']} tiles to {path}; "
                  f"{meta['n_skipped']} objects without {meta['modality']} skipped")


@app.command()
def index(
    embeddings: List[Path] = typer.Option(..., "--embeddings", help="Embedding catalogue folder(s), one per modality."),
    out: Path = typer.Option(..., "--out", help="Index folder to write."),
    kind: str = typer.Option("auto", "--kind", help="auto, flat (exact), hnsw or ivfpq."),
    neighbours: int = typer.Option(0, "--neighbours", help="Also write top-K neighbour tables (Parquet) per modality."),
):
    """Build a vector index (faiss, cosine) over embedding catalogues."""
    from .data.records import InvalidDataError
    from .search.catalog_search import CatalogSearch, build_index

    try:
        path = build_index(embeddings, out, kind=kind)
        search = CatalogSearch(path)
        for modality in search.modalities:
            info = search.manifest["modalities"][modality]
            console.print(f"{modality}: {info['count']} vectors of dim {info['dim']} in a {info['kind']} index")
            if neighbours:
                from .embed.store import read_embeddings
                from .search.neighbours import write_neighbour_table

                ids, ra, dec, vectors = read_embeddings(info["embeddings"], modality)
                table = path / f"neighbours_{modality}.parquet"
                write_neighbour_table(search.index(modality), vectors, ids, neighbours, table)
                console.print(f"  top-{neighbours} neighbours of every object -> {table}")
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    console.print(f"wrote {path}")


@app.command()
def export(
    embeddings: Path = typer.Option(..., "--embeddings", help="Embedding catalogue folder (astroembed embed)."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    fmt: Optional[str] = typer.Option(None, "--format", help="fits, votable, csv or hdf5 (default: from --out)."),
    tiles: Optional[List[int]] = typer.Option(None, "--tile", help="Only this HEALPix tile (repeatable)."),
    cone: Optional[Tuple[float, float, float]] = typer.Option(None, "--cone", help="Only objects within RADIUS "
                                                             "deg of RA DEC (deg): --cone RA DEC RADIUS."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
):
    """Write an embedding catalogue (or a tile / sky-region selection) to one FITS, VOTable, CSV or HDF5 file."""
    from .data.records import InvalidDataError
    from .embed.export import export_catalogue

    try:
        path, n = export_catalogue(embeddings, out, fmt, tiles=tiles or None, cone=cone, overwrite=overwrite)
    except (InvalidDataError, ValueError, FileNotFoundError, FileExistsError) as exc:
        _fail(exc)
    console.print(f"wrote {n} embeddings to {path}")


@app.command()
def search(
    index_dir: Path = typer.Option(..., "--index", help="Index folder (astroembed index)."),
    object_id: Optional[str] = typer.Option(None, "--id", help="Query: an object id of the catalogue."),
    ra: Optional[float] = typer.Option(None, "--ra", help="Query: the catalogued object at this RA (deg) ..."),
    dec: Optional[float] = typer.Option(None, "--dec", help="... and Dec (deg)."),
    file: Optional[Path] = typer.Option(None, "--file", help="Query: a FITS/JPEG cutout or spectrum file."),
    k: int = typer.Option(10, "--k", help="Number of neighbours."),
    query_modality: Optional[str] = typer.Option(None, "--query-modality", help="image or spectrum."),
    target_modality: Optional[str] = typer.Option(None, "--target-modality", help="image or spectrum."),
    exclude_within: Optional[float] = typer.Option(None, "--exclude-within",
                                                   help="Drop neighbours within this many arcsec of the query."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model for --file (default: the catalogue's)."),
    bands_as: Optional[str] = typer.Option(None, "--bands-as", help="For --file: declare its image planes, in "
                                           "order, to be these bands (e.g. g,r,z)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Nearest neighbours of a galaxy, within or across modalities."""
    from .data.records import InvalidDataError
    from .search.catalog_search import CatalogSearch

    try:
        results = CatalogSearch(index_dir).search(
            k=k, object_id=object_id, ra=ra, dec=dec, file=file, query_modality=query_modality,
            target_modality=target_modality, exclude_within_arcsec=exclude_within, model=model,
            bands_as=bands_as.split(",") if bands_as else None)
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    if as_json:
        _print_json([r.__dict__ for r in results])
        return
    from rich.table import Table

    table = Table(title="neighbours")
    for col in ("rank", "object_id", "similarity", "ra", "dec", "separation (arcsec)"):
        table.add_column(col)
    for i, r in enumerate(results, 1):
        table.add_row(str(i), r.object_id, f"{r.similarity:.4f}", f"{r.ra:.5f}", f"{r.dec:.5f}",
                      f"{r.separation_arcsec:.1f}")
    Console().print(table)


@app.command()
def evaluate(
    embeddings: Optional[Path] = typer.Option(None, "--embeddings", help="Embedding catalogue folder, or a "
                                              "catalogue file with --features."),
    model: Optional[Path] = typer.Option(None, "--model", help="Embed --data with this model first (instead of "
                                         "--embeddings)."),
    data: Optional[Path] = typer.Option(None, "--data", help="MMU survey to embed with --model (default labels)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="MMU survey or catalogue with the label columns "
                                          "(default: the --embeddings catalogue itself)."),
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
    no_report: bool = typer.Option(False, "--no-report", help="metrics.json only."),
):
    """Downstream science of an embedding: probes, baselines, posteriors, anomalies and a report."""
    from .data.records import InvalidDataError
    from .evaluate.command import embed_for_evaluation, evaluate_paths
    from .evaluate.runner import EvaluateOptions

    try:
        if (embeddings is None) == (model is None) or (model is not None and data is None):
            raise ValueError("give --embeddings, or --model with --data")
        if model is not None:
            embeddings, labels = embed_for_evaluation(model, data, out, modality or "auto"), labels or data
        options = EvaluateOptions(seed=seed, test_fraction=test_fraction, n_bootstrap=bootstrap,
                                  probes=tuple(p for p in probes.split(",") if p),
                                  cross_modal=tuple(tuple(c.split(":", 1)) for c in cross_modal),
                                  knn_metric="euclidean" if features else "cosine")
        evaluate_paths(embeddings, labels, tasks, out, features.split(",") if features else None, name, baseline,
                       test_embeddings, test_labels, modality, options, report=not no_report,
                       column_names=column_names.split(",") if column_names else None, log=console.print)
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    console.print(f"wrote {out / 'metrics.json'}" + ("" if no_report else f" and {out / 'report.html'}"))


@app.command()
def anomalies(
    embeddings: Path = typer.Option(..., "--embeddings", help="Embedding catalogue folder to rank."),
    out: Path = typer.Option(..., "--out", help="Parquet file of object_id, ra, dec and the anomaly columns."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Embeddings of normal objects "
                                             "(default: rank the catalogue against itself)."),
    k: int = typer.Option(10, "--k", help="Neighbours of the k-NN distance."),
    seed: int = typer.Option(0, "--seed"),
):
    """Rank a catalogue by strangeness: k-NN distance with a calibrated p-value, and IsolationForest."""
    from .data.records import InvalidDataError
    from .evaluate.anomaly import write_anomalies

    try:
        path = write_anomalies(embeddings, out, reference, k=k, seed=seed)
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    console.print(f"wrote {path} (most anomalous first; filter on ood_pvalue or anomaly_rank)")


@app.command()
def demo(out: Path = typer.Option(Path("demo_output"), "--out", help="Working folder of the demo."),
         n: int = typer.Option(2000, "--n", help="Galaxies in the built-in survey."),
         seed: int = typer.Option(0, "--seed"),
         minutes: float = typer.Option(3.0, "--minutes", help="Budget of each pretraining stage (CLIP: 2/3 of it).")):
    """The main job: every stage of the pipeline that exists, on the built-in survey."""
    _require("survey", "train", "evaluate", feature="the main job (astroembed demo)")
    from .pipeline import DemoFolderError, run_demo

    try:
        run_demo(out=out, n=n, seed=seed, console=Console(), image_minutes=minutes, spectrum_minutes=minutes,
                 clip_minutes=2 * minutes / 3)
    except DemoFolderError as exc:
        _fail(exc)


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
    _require("app", feature="astroembed serve")
    from .app.server import serve as run_server
    from .data.records import InvalidDataError

    try:
        run_server(index_dir, data, host=host, port=port, cache_dir=cache, cors_origins=cors_origin,
                   max_upload_mb=max_upload_mb)
    except (InvalidDataError, FileNotFoundError) as exc:
        _fail(exc)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
