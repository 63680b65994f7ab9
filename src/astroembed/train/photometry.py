"""Self-supervised pretraining of the photometry encoder (SimCLR on catalogue photometry).

    astroembed pretrain photometry --data SURVEY --out RUN

For catalogues without images or spectra to align with (e.g. a photo-z training set): two views of each
galaxy's fluxes (:mod:`astroembed.augment.photometry`: noise redrawn from the ivar, Galactic reddening
with the images' R_b table, band dropout) through the encoder and a projection head, NT-Xent between
the views. The arcsinh softening and per-band standardisation are fitted on the training galaxies and
saved with the export (``model_type: "photometry_encoder"``), which ``astroembed.load(RUN/model)
.embed_photometry(flux, ivar, bands)`` and ``astroembed pretrain clip --photometry-model`` read.

What the views share is the galaxy's SED shape and brightness up to noise and dust, so the embedding
keeps colours (redshift) and discards what a shallower exposure or a little reddening would change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..augment.photometry import PhotometryAugmentConfig, augment_photometry
from ..config import Config, save_yaml_config
from ..data.dataset import MMUDataset
from ..data.records import InvalidDataError
from ..models.heads import MoCoProjectionHead
from ..models.io import save_model
from ..models.photometry_encoder import PhotometryEncoder, PhotometryEncoderConfig
from ..objectives.ntxent import NTXentLoss
from ..preprocess.photometry import PhotometryPreprocessConfig, fit_photometry_preprocess, photometry_features
from .clip_data import survey_photometry, survey_photometry_bands
from .common import RunConfig, fit_stage

__all__ = ["PhotometryPretrainConfig", "export_photometry_encoder", "pretrain_photometry"]


@dataclass
class PhotometryPretrainConfig(Config):
    """Everything a photometry pretraining run needs; loadable from YAML."""

    data: str = ""
    out: str = "runs/photometry"
    model: PhotometryEncoderConfig = field(default_factory=PhotometryEncoderConfig)  # n_bands set from the data
    augment: PhotometryAugmentConfig = field(default_factory=PhotometryAugmentConfig)
    projection_dim: int = 64
    projection_hidden: int = 128
    temperature: float = 0.2
    unit: str = "nanomaggies"
    zero_point: float = 22.5
    train_indices: list[int] | None = None
    run: RunConfig = field(default_factory=RunConfig)


class PhotometrySimCLR(nn.Module):
    """Encoder + projection head + NT-Xent on two augmented views; free of Lightning."""

    def __init__(self, config: PhotometryPretrainConfig, encoder: PhotometryEncoder,
                 preprocess: PhotometryPreprocessConfig):
        super().__init__()
        self.config, self.encoder, self.preprocess = config, encoder, preprocess
        self.head = MoCoProjectionHead(encoder.embed_dim, config.projection_hidden, config.projection_dim)
        self.loss = NTXentLoss(config.temperature)

    def view(self, batch) -> torch.Tensor:
        flux, ivar = augment_photometry(batch["photometry_flux"], batch["photometry_ivar"], self.preprocess.bands,
                                        self.config.augment)
        return self.head(self.encoder(photometry_features(flux, ivar, self.preprocess)))

    def step(self, batch, device=None) -> tuple[torch.Tensor, int, dict]:
        loss = self.loss(self.view(batch).float(), self.view(batch).float())
        return loss, len(batch["photometry_flux"]), {}

    def parameter_groups(self, lr: float) -> list[dict]:
        return [{"params": [*self.encoder.parameters(), *self.head.parameters()], "lr": lr}]


def export_photometry_encoder(encoder: PhotometryEncoder, preprocess: PhotometryPreprocessConfig, directory: Path,
                              extra: dict | None = None) -> Path:
    """Save the encoder with the preprocessing ``astroembed.load(...).embed_photometry`` applies."""
    return save_model(encoder, {
        "model_type": "photometry_encoder",
        "modality": "photometry",
        "model": encoder.config.to_dict(),
        "preprocessing": preprocess.to_dict(),
        "bands": list(preprocess.bands),
        "embed_dim": int(encoder.embed_dim),
        "training": {"method": "simclr", **(extra or {})},
    }, directory)


def pretrain_photometry(config: PhotometryPretrainConfig) -> Path:
    """Run (or resume) photometry pretraining; returns the exported encoder folder ``RUN/model``."""
    import lightning.pytorch as pl

    from .lightning_module import StageModule

    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(config.run.seed, workers=True, verbose=False)
    data = Path(config.data)
    if not data.exists():
        raise InvalidDataError("no such file or folder", source=str(data))
    dataset = MMUDataset(data, modalities=("photometry",), indices=config.train_indices)
    bands = survey_photometry_bands(dataset.survey, dataset.indices, str(data))
    flux, ivar = survey_photometry(dataset)
    preprocess = fit_photometry_preprocess(flux, ivar, bands, config.unit, config.zero_point)
    config.model = dataclasses.replace(config.model, n_bands=len(bands))
    save_yaml_config(config, run_dir / "config.yaml")
    encoder = PhotometryEncoder(config.model)
    networks = PhotometrySimCLR(config, encoder, preprocess)
    module = StageModule(networks, config.run)
    return fit_stage(module, dataset, config.run, run_dir, str(config.data),
                     lambda model_dir, extra: export_photometry_encoder(encoder, preprocess, model_dir, extra))
