"""`astroembed pretrain image|spectrum|photometry|clip`: the self-supervised stages, one config convention."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import app, console, fail, require


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
    require("train", feature="pretraining")
    from ..data.records import InvalidDataError
    from ..config import load_yaml_config

    overrides = {**overrides, **{f"run.{k}": arguments[k] for k in RUN_OPTIONS if arguments[k] is not None}}
    try:
        model_dir = run_stage(load_yaml_config(config_cls, config, overrides))
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        fail(exc)
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
    from ..train.image import ImagePretrainConfig, pretrain_image

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
    from ..train.spectrum import SpectrumPretrainConfig, pretrain_spectrum

    overrides = {"data": str(data), "out": str(out), "model.dim": dim, "model.depth": depth,
                 "preprocess.wave_step": wave_step}
    _pretrain(SpectrumPretrainConfig, pretrain_spectrum, config, overrides, locals(), "spectrum encoder")


@pretrain_app.command("photometry")
def pretrain_photometry_cmd(
    data: Path = typer.Option(..., "--data", help="MMU survey folder (or tile) with photometry (fluxes + ivar)."),
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoints, logs, exported model)."),
    config: Optional[str] = typer.Option(None, "--config", help=CONFIG_HELP),
    dim: Optional[int] = typer.Option(None, "--dim", help="Encoder width."),
    depth: Optional[int] = typer.Option(None, "--depth", help="Transformer blocks."),
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
    """Pretrain a photometry encoder (SimCLR on noise / reddening / band-dropout views of the fluxes)."""
    from ..train.photometry import PhotometryPretrainConfig, pretrain_photometry

    overrides = {"data": str(data), "out": str(out), "model.dim": dim, "model.depth": depth}
    _pretrain(PhotometryPretrainConfig, pretrain_photometry, config, overrides, locals(), "photometry encoder")


@pretrain_app.command("clip")
def pretrain_clip_cmd(
    data: Path = typer.Option(..., "--data", help="MMU survey folder with the modalities to align."),
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoints, logs, exported model)."),
    image_model: Optional[Path] = typer.Option(None, "--image-model", help="Exported image encoder (RUN/model)."),
    spectrum_model: Optional[Path] = typer.Option(None, "--spectrum-model",
                                                  help="Exported spectrum encoder (RUN/model)."),
    photometry: bool = typer.Option(False, "--photometry",
                                    help="Align a photometry encoder trained from scratch in this run."),
    photometry_model: Optional[Path] = typer.Option(None, "--photometry-model",
                                                    help="Exported photometry encoder (RUN/model)."),
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
    """Align two or three of image, spectrum and photometry in one space with pairwise CLIP losses (AstroCLIP)."""
    from ..train.clip import CLIPConfig, pretrain_clip

    # Two or three modalities (checked by the stage, which names what is missing); unset options leave
    # the config file's values.
    path = lambda p: str(p) if p is not None else None  # noqa: E731
    overrides = {"image_model": path(image_model), "spectrum_model": path(spectrum_model),
                 "photometry": photometry or None, "photometry_model": path(photometry_model),
                 "data": str(data), "out": str(out), "embed_dim": embed_dim, "freeze_image": freeze_image,
                 "freeze_spectrum": freeze_spectrum}
    _pretrain(CLIPConfig, pretrain_clip, config, overrides, locals(), "aligned model")
