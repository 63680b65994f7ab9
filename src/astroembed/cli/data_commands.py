"""`astroembed simulate`, `info`, `convert`, `augment`: surveys in, checked and looked at."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer
from rich.console import Console

from .base import app, console, fail, print_json, require


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", help="Root folder of the MMU layout to write."),
    n: int = typer.Option(1000, "--n", min=1, max=10000, help="Number of galaxies (1 to 10,000)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same survey."),
    image_size: int = typer.Option(96, "--image-size", help="Cutout side in pixels."),
    workers: int = typer.Option(2, "--workers", help="Processes used to render."),
):
    """Render the built-in survey: images and spectra of real SDSS galaxies (see README)."""
    require("survey", feature="the built-in survey")
    from ..data.records import InvalidDataError
    from ..data.simulate import simulate_survey

    try:
        path = simulate_survey(n=n, seed=seed, out=out, image_size=image_size, workers=workers)
    except (InvalidDataError, ValueError) as exc:
        fail(exc)
    console.print(f"wrote {n} galaxies to {path}")


@app.command()
def info(path: Path = typer.Argument(..., help="An MMU tile, or a folder of tiles."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables.")):
    """Summarise a survey: objects per modality, bands, sizes, wavelengths, labels, invalid values."""
    from ..data.info import print_summary, summarize
    from ..data.records import InvalidDataError

    try:
        summary = summarize(path)
    except InvalidDataError as exc:
        fail(exc)
    if as_json:
        print_json(summary)
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
    from ..data.convert import convert as convert_inputs
    from ..data.records import InvalidDataError

    try:
        report = convert_inputs(inputs, out, survey=survey, config=config, if_exists=if_exists)
    except InvalidDataError as exc:
        fail(exc)
    Console(stderr=True, highlight=False, soft_wrap=True).print(report.summary(), markup=False)


@app.command()
def augment(
    data: Path = typer.Option(..., "--data", help="MMU survey folder, or a folder of JPEG/PNG cutouts."),
    show: Path = typer.Option(..., "--show", help="PNG to write: originals and augmented views."),
    n: int = typer.Option(4, "--n", min=1, help="Galaxies (rows)."),
    views: int = typer.Option(6, "--views", min=1, help="Augmented views per galaxy."),
    seed: int = typer.Option(0, "--seed"),
):
    """Draw a grid of augmented views a person can look at."""
    require("train", feature="augment --show")
    import numpy as np

    from ..augment.grid import draw_augmentation_grid
    from ..augment.image import ImageAugmentConfig, ImageAugmenter
    from ..data.records import InvalidDataError
    from ..train.data import image_dataset

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
        fail(exc)
    console.print(f"wrote {show}")
