"""Building the aligned model from exported encoders, and exporting it as one folder.

An aligned export holds every encoder and head in one ``model.safetensors`` and, in ``config.json``, each
encoder's architecture and preprocessing under its modality's name (``image``, ``spectrum``,
``photometry``), the image bands, the photometry bands and the training summary.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..data.records import InvalidDataError
from ..models.clip_model import MODALITIES, AlignedModel
from ..models.io import load_model, save_model
from ..models.photometry_encoder import build_photometry_encoder
from ..preprocess.photometry import PhotometryPreprocessConfig

__all__ = ["build_aligned", "configured_modalities", "export_aligned", "export_aligned_model", "load_encoder"]


def load_encoder(path, model_type: str, what: str) -> tuple[nn.Module, dict]:
    """An exported encoder and its config, checked to be of ``model_type``."""
    path = Path(path)
    if (path / "model" / "config.json").is_file() and not (path / "config.json").is_file():
        path = path / "model"  # a run folder was given
    module, config = load_model(path)
    if config["model_type"] != model_type:
        raise InvalidDataError(f"{what} must be a {model_type!r} export, this is {config['model_type']!r}",
                               source=str(path / "config.json"), field="model_type")
    return module, config


def configured_modalities(config) -> tuple[str, ...]:
    """The modalities an alignment config names (``image_model``, ``spectrum_model``, ``photometry`` or
    ``photometry_model``), in the model's order."""
    given = {"image": bool(config.image_model), "spectrum": bool(config.spectrum_model),
             "photometry": bool(config.photometry or config.photometry_model)}
    return tuple(m for m in MODALITIES if given[m])


def _encoder_entry(cfg: dict) -> dict:
    return {"model_type": cfg["model_type"], "model": cfg["model"]}


def build_aligned(config, photometry_pre: Callable[[], PhotometryPreprocessConfig] | None = None
                  ) -> tuple[AlignedModel, dict[str, dict]]:
    """The aligned model a ``CLIPConfig`` describes, from the exported encoders (and a new photometry
    encoder), and each encoder's saved config (``model_type``, ``model``, ``preprocessing``, ...) by modality."""
    modalities = config.modalities
    if len(modalities) < 2:
        raise ValueError(f"CLIP alignment needs two or three modalities (--image-model, --spectrum-model, "
                         f"--photometry or --photometry-model); got {list(modalities)}")
    encoders, configs = {}, {}
    if config.image_model:
        encoders["image"], configs["image"] = load_encoder(config.image_model, "image_encoder", "--image-model")
    if config.spectrum_model:
        encoders["spectrum"], configs["spectrum"] = load_encoder(config.spectrum_model, "spectrum_transformer",
                                                                 "--spectrum-model")
    if config.photometry_model:
        encoders["photometry"], configs["photometry"] = load_encoder(config.photometry_model, "photometry_encoder",
                                                                     "--photometry-model")
    elif config.photometry:
        if photometry_pre is None:
            raise ValueError("a new photometry encoder needs its fitted preprocessing")
        # Called after the exported encoders loaded: a wrong model path is reported before the data is read.
        photometry_pre = photometry_pre()
        arch = dataclasses.replace(config.photometry_encoder, n_bands=len(photometry_pre.bands))
        # Drawn from a stream of its own (the seed + 1): the heads start as they would without photometry.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((torch.initial_seed() + 1) % 2 ** 63)
            encoders["photometry"] = build_photometry_encoder(arch)
        configs["photometry"] = {"model_type": "photometry_encoder", "model": arch.to_dict(),
                                 "preprocessing": photometry_pre.to_dict()}
    entries = {m: _encoder_entry(c) for m, c in configs.items()}
    if getattr(config, "measured_fluxes", False):
        _add_measured_fluxes(config, encoders, configs, entries)
    model = AlignedModel(encoders.get("image"), encoders.get("spectrum"), config.embed_dim, config.projection_hidden,
                         photometry_encoder=encoders.get("photometry"),
                         **{f"{m}_config": entry for m, entry in entries.items()})
    return model, configs


def _add_measured_fluxes(config, encoders: dict, configs: dict, entries: dict) -> None:
    """Wrap the image and spectrum encoders so that their features carry the measured fluxes
    (:mod:`astroembed.models.measured_fluxes`), in place."""
    from ..models.measured_fluxes import ImageWithApertureFluxes, SpectrumWithBinnedFluxes
    from ..preprocess.image import PreprocessConfig
    from ..preprocess.spectrum import SpectrumPreprocessConfig

    if "image" in encoders:
        pre = PreprocessConfig.from_dict(configs["image"]["preprocessing"])
        if pre.mode != "arcsinh":
            raise InvalidDataError("aperture fluxes need an image encoder trained on survey flux (arcsinh "
                                   "stretch), not on 8-bit RGB cutouts", source=str(config.image_model),
                                   field="preprocessing")
        scales = [pre.band_scales[b] for b in configs["image"]["bands"]]
        encoders["image"] = ImageWithApertureFluxes(encoders["image"], scales, pre.softening, config.aperture_radii,
                                                    encoder_config=entries["image"], colours=config.measured_colours)
        entries["image"] = {"model_type": "image_with_aperture_fluxes", "model": encoders["image"].model_config()}
    if "spectrum" in encoders:
        n_pixels = SpectrumPreprocessConfig.from_dict(configs["spectrum"]["preprocessing"]).n_pixels
        encoders["spectrum"] = SpectrumWithBinnedFluxes(encoders["spectrum"], n_pixels, config.spectrum_flux_bins,
                                                        encoder_config=entries["spectrum"],
                                                        colours=config.measured_colours)
        entries["spectrum"] = {"model_type": "spectrum_with_binned_fluxes",
                               "model": encoders["spectrum"].model_config()}


def export_aligned_model(model: AlignedModel, image_cfg: dict, spectrum_cfg: dict, directory: Path,
                         extra: dict | None = None) -> Path:
    """Save an image + spectrum aligned model (the two-modality form of :func:`export_aligned`)."""
    return export_aligned(model, {"image": image_cfg, "spectrum": spectrum_cfg}, directory, extra)


def export_aligned(model: AlignedModel, configs: dict[str, dict], directory: Path, extra: dict | None = None) -> Path:
    """Save the aligned model as one folder: every encoder and head, every preprocessing config.

    ``configs`` maps each of the model's modalities to its encoder's saved config (``preprocessing``;
    ``bands`` for the image encoder)."""
    config = {
        "model_type": "aligned",
        "modality": "aligned",
        "modalities": list(model.modalities),
        "model": model.model_config(),
        "preprocessing": {m: configs[m]["preprocessing"] for m in model.modalities},
        "embed_dim": int(model.embed_dim),
        "training": {"method": "clip", **(extra or {})},
    }
    if "image" in configs:
        config["bands"] = list(configs["image"]["bands"])
    if "photometry" in configs:
        config["photometry_bands"] = list(configs["photometry"]["preprocessing"]["bands"])
    return save_model(model, config, directory)
