"""A decoder from a vector of the CLIP shared space to a galaxy spectrum on the spectrum model's grid.

    decoder = SpectrumDecoder(input_dim=128, n_pixels=1557)
    shape, log10_scale = decoder(unit_vectors)     # (N, 1557) normalised flux, (N,) log10 of its scale

The spectrum is predicted the way the spectrum model's preprocessing writes it
(:mod:`astroembed.preprocess.spectrum`): resampled onto the model grid and divided by its robust scale
s (the median |flux| over valid pixels), with log10 s predicted beside it, so ``shape * 10**log10_scale``
is the flux in the survey's unit (1e-17 erg/s/cm^2/A).

Why an MLP and not a convolutional upsampler: the input is one global vector with no wavelength axis to
upsample from, and a galaxy spectrum is well described as a combination of a few smooth templates whose
line positions move with redshift. The last layer is linear, so its output is a learned combination of
``hidden`` full-length basis spectra (its weight columns), and the hidden layers choose the combination,
redshift included; the bias of that layer starts as the training galaxies' mean spectrum. A conv
upsampler would impose local smoothness, which the kcorrect templates already have, and would have to
learn the redshift shift of every line from a short initial sequence.

Saved as ``model_type: "spectrum_decoder"`` in the folder ``spectrum_decoder/`` of the aligned model
it decodes (:data:`DECODER_FOLDER`), so ``astroembed.load(clip_model).predict_spectrum(...)`` finds it;
its ``config.json`` records the aligned model's content hash, the grid (the spectrum preprocessing) and
which modalities' embeddings it was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from astroembed.data.records import InvalidDataError
from astroembed.models.io import content_hash, load_model, save_model
from astroembed.models.registry import MODEL_TYPES

__all__ = ["SpectrumDecoder", "build_spectrum_decoder", "DECODER_FOLDER", "save_decoder", "load_decoder"]

DECODER_FOLDER = "spectrum_decoder"


class SpectrumDecoder(nn.Module):
    """MLP: shared-space vector -> (normalised spectrum on the model grid, log10 of its scale).

    Parameters
    ----------
    input_dim
        size of the shared space.
    n_pixels
        pixels of the spectrum model's grid.
    hidden
        width of the hidden layers (and the number of basis spectra the last layer combines).
    depth
        number of hidden layers (>= 1).
    dropout
        dropout after each hidden layer (training only).
    """

    def __init__(self, input_dim: int, n_pixels: int, hidden: int = 512, depth: int = 2, dropout: float = 0.1):
        super().__init__()
        for name, value, low in (("input_dim", input_dim, 1), ("n_pixels", n_pixels, 2), ("hidden", hidden, 1),
                                 ("depth", depth, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        width = input_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(hidden, n_pixels + 1)  # the last output is log10 of the scale
        # Unit vectors of the shared space vary by a few hundredths per component around a common mean;
        # standardised inputs (statistics of the training galaxies, saved with the weights) let the first
        # layer see those differences at the scale its initialisation expects.
        self.register_buffer("input_mean", torch.zeros(input_dim))
        self.register_buffer("input_std", torch.ones(input_dim))
        self.input_dim, self.n_pixels, self.hidden, self.depth, self.dropout = (input_dim, n_pixels, hidden,
                                                                                depth, dropout)

    @torch.no_grad()
    def start_from(self, vectors: torch.Tensor, mean_shape: torch.Tensor, mean_log10_scale: float) -> None:
        """Fit the input standardisation to the training vectors, and set the output bias to the training
        set's mean spectrum and scale (the decoder's starting guess)."""
        self.input_mean.copy_(vectors.mean(0))
        self.input_std.copy_(vectors.std(0).clamp_min(1e-6))
        self.out.bias[:-1] = torch.as_tensor(mean_shape, dtype=self.out.bias.dtype)
        self.out.bias[-1] = float(mean_log10_scale)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, input_dim) -> normalised flux (N, n_pixels) and log10 scale (N,)."""
        if z.ndim != 2 or z.shape[1] != self.input_dim:
            raise ValueError(f"expected (N, {self.input_dim}) shared-space vectors, got {tuple(z.shape)}")
        y = self.out(self.body((z - self.input_mean) / self.input_std))
        return y[:, :-1], y[:, -1]

    def model_config(self) -> dict[str, Any]:
        """What :func:`build_spectrum_decoder` needs (``config.json["model"]``)."""
        return {"input_dim": self.input_dim, "n_pixels": self.n_pixels, "hidden": self.hidden,
                "depth": self.depth, "dropout": self.dropout}


def build_spectrum_decoder(config: Mapping[str, Any]) -> SpectrumDecoder:
    """A randomly initialised decoder from :meth:`SpectrumDecoder.model_config` output."""
    return SpectrumDecoder(int(config["input_dim"]), int(config["n_pixels"]), int(config.get("hidden", 512)),
                           int(config.get("depth", 2)), float(config.get("dropout", 0.1)))


def save_decoder(decoder: SpectrumDecoder, aligned_model: str | Path, preprocessing: Mapping[str, Any],
                 inputs: list[str], training: Mapping[str, Any] | None = None) -> Path:
    """Save ``decoder`` into ``<aligned_model>/spectrum_decoder/``; returns that folder.

    ``preprocessing`` is the spectrum preprocessing of the aligned model (it defines the grid) and
    ``inputs`` the modalities whose embeddings the decoder was trained on.
    """
    aligned_model = Path(aligned_model)
    return save_model(decoder, {
        "model_type": "spectrum_decoder", "model": decoder.model_config(), "preprocessing": dict(preprocessing),
        "inputs": list(inputs), "aligned_model_hash": content_hash(aligned_model),
        "training": dict(training or {})}, aligned_model / DECODER_FOLDER)


def load_decoder(aligned_model: str | Path) -> tuple[SpectrumDecoder, dict[str, Any]]:
    """The decoder saved beside an aligned model, checked to belong to those exact weights.

    Raises
    ------
    InvalidDataError
        the model has no decoder (the message says how to train one), or the decoder was trained on
        other weights of the aligned model (field ``aligned_model_hash``).
    """
    aligned_model = Path(aligned_model)
    folder = aligned_model / DECODER_FOLDER
    if not (folder / "config.json").is_file():
        raise InvalidDataError(f"the model has no spectrum decoder (no {DECODER_FOLDER}/config.json); train one "
                               f"with `astroembed train-spectrum-decoder --model {aligned_model} --data SURVEY`",
                               source=str(aligned_model), field=DECODER_FOLDER)
    decoder, config = load_model(folder)
    if config.get("aligned_model_hash") != content_hash(aligned_model):
        raise InvalidDataError("the spectrum decoder was trained on other weights of the aligned model (its "
                               "aligned_model_hash differs from model.safetensors); train it again",
                               source=str(folder / "config.json"), field="aligned_model_hash")
    return decoder, config


MODEL_TYPES.register("spectrum_decoder", build_spectrum_decoder)
