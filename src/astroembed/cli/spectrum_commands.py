"""`astroembed train-spectrum-decoder` and `predict-spectrum`: spectra predicted from the shared space."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import app, console, fail, require


@app.command("train-spectrum-decoder")
def train_spectrum_decoder_cmd(
    model: Path = typer.Option(..., "--model", help="Exported aligned (CLIP) model folder (RUN/model); the "
                               "decoder is saved inside it, in spectrum_decoder/."),
    data: Path = typer.Option(..., "--data", help="MMU survey with images (or photometry) and spectra."),
    out: Path = typer.Option(..., "--out", help="Run folder: cached training set, config.yaml, history.json."),
    config: Optional[str] = typer.Option(None, "--config", help="A shipped config by name (decoder_cpu) or a "
                                         "YAML file."),
    inputs: Optional[str] = typer.Option(None, "--inputs", help="Modalities decoded: image, photometry or "
                                         "image,photometry."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Most epochs (early stopping may end sooner)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N."),
    seed: Optional[int] = typer.Option(None, "--seed"),
):
    """Train a decoder from the shared space to the spectrum on the model grid (the aligned model frozen)."""
    require("train", feature="training a spectrum decoder")
    from ..config import load_yaml_config
    from ..data.records import InvalidDataError
    from ..train.spectrum_decoder import SpectrumDecoderConfig, train_spectrum_decoder

    overrides = {"model": str(model), "data": str(data), "out": str(out), "epochs": epochs, "device": device,
                 "seed": seed, "inputs": inputs.split(",") if inputs else None}
    try:
        folder = train_spectrum_decoder(load_yaml_config(SpectrumDecoderConfig, config, overrides),
                                        log=console.print)
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    console.print(f"saved the spectrum decoder to {folder}")


@app.command("predict-spectrum")
def predict_spectrum_cmd(
    model: Path = typer.Option(..., "--model", help="Aligned model folder holding a spectrum decoder."),
    data: Path = typer.Option(..., "--data", help="MMU survey (tile or folder) with the decoder's inputs."),
    out: Path = typer.Option(..., "--out", help="Output .parquet (object_id, flux; the grid in the schema "
                             "metadata) or .fits (table + WAVELENGTH HDU)."),
    normalised: bool = typer.Option(False, "--normalised", help="Divide each spectrum by its predicted scale "
                                    "(median |flux| = 1) instead of the survey's flux unit."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N, auto."),
    batch_size: int = typer.Option(256, "--batch-size"),
):
    """Predict every galaxy's spectrum on the model's wavelength grid from its image (or photometry)."""
    from ..data.records import InvalidDataError
    from ..evaluate.predicted_spectra import write_predicted_spectra

    try:
        path = write_predicted_spectra(model, data, out, normalised, device, batch_size)
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    console.print(f"wrote predicted spectra to {path}")
