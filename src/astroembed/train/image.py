"""Self-supervised pretraining of an image encoder: SimCLR, MoCo v2 or BYOL on astrophysical views.

    astroembed pretrain image --data PATH --out RUN [--config cfg.yaml] [--max-minutes M]

Augmentations run batched on the training device inside the step (the reference implementations
augment one image at a time on the CPU, which starves a GPU). Order: raw flux -> physical and
geometric views (flux units) -> preprocessing stretch -> encoder -> projection head -> loss.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..augment.image import ImageAugmentConfig, ImageAugmenter
from ..preprocess.image import PreprocessConfig, preprocess
from ..models.image_encoder import ImageEncoderConfig, build_image_encoder
from ..models.io import save_model
from ..config import Config, save_yaml_config
from ..runtime import bf16_layout
from .common import RunConfig, fit_stage
from .data import image_dataset
from .methods import SSL_METHODS



@dataclass
class ImagePretrainConfig(Config):
    """Everything an image pretraining run needs; loadable from YAML (see configs/)."""

    data: str = ""
    out: str = "runs/image"
    method: str = "simclr"
    encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    augment: ImageAugmentConfig = field(default_factory=ImageAugmentConfig)
    preprocess: PreprocessConfig | None = None  # None: chosen from the data (see train.data)
    projection_dim: int = 128
    projection_hidden: int = 512
    temperature: float = 0.1        # SimCLR 0.1-0.5; MoCo v2 uses 0.2
    queue_size: int = 4096          # MoCo negatives
    momentum: float = 0.99          # MoCo/BYOL target EMA (BYOL: start of a cosine schedule to 1)
    train_indices: list[int] | None = None  # restrict pretraining to these objects (e.g. a held-out split)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        if self.method not in SSL_METHODS:
            raise ValueError(f"method must be one of {SSL_METHODS.names()}, got {self.method!r}")


class ImageSSLModule(nn.Module):
    """The encoder, the method's heads and loss, and the augmenter; free of Lightning (a bare loop can drive it)."""

    def __init__(self, config: ImagePretrainConfig, bands: tuple[str, ...]):
        super().__init__()
        self.config = config
        self.bands = tuple(bands)
        self.encoder = build_image_encoder(config.encoder)
        self.method = SSL_METHODS[config.method](self.encoder, config)
        self.augmenter = ImageAugmenter(config.augment)

    def views(self, batch: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independently augmented, preprocessed views of the batch's cutouts."""
        flux = batch["image"]
        ivar = batch["image_ivar"] if "image_ivar" in batch and bool(batch["image_has_ivar"].all()) else None
        psf = batch.get("psf_fwhm")
        scale = float(batch["pixel_scale"][0]) if "pixel_scale" in batch else float("nan")
        out = []
        for _ in range(2):
            view = self.augmenter(flux, self.bands, ivar=ivar, psf_fwhm=psf,
                                  pixel_scale=scale if np.isfinite(scale) else 0.262, generator=generator)
            out.append(preprocess(view, self.config.preprocess, self.bands))
        return out[0], out[1]

    def training_loss(self, view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
        return self.method.training_loss(self.encoder, view_a, view_b)

    def step(self, batch: dict, device=None) -> tuple[torch.Tensor, int, dict]:
        view_a, view_b = self.views(batch)
        return self.training_loss(view_a, view_b), len(view_a), {}

    def after_step(self, step: int, total_steps: int) -> None:
        self.method.update_target(self.encoder, step, total_steps)


def export_image_encoder(encoder: nn.Module, config: ImagePretrainConfig, bands, directory: Path,
                         extra: dict | None = None) -> Path:
    """Save the encoder with everything `astroembed.load` needs to embed raw cutouts."""
    return save_model(encoder, {
        "model_type": "image_encoder",
        "modality": "image",
        "model": config.encoder.to_dict(),
        "preprocessing": config.preprocess.to_dict(),
        "bands": list(bands),
        "embed_dim": int(encoder.embed_dim),
        "training": {"method": config.method, **(extra or {})},
    }, directory)


def pretrain_image(config: ImagePretrainConfig) -> Path:
    """Run (or resume) image pretraining; returns the exported model folder ``RUN/model``."""
    import lightning.pytorch as pl

    from .lightning_module import StageModule

    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(config.run.seed, workers=True, verbose=False)
    dataset, bands, preprocess_config, physical = image_dataset(config.data, config.preprocess)
    # Training sees augment-cropped views; embedding must centre-crop to the same size.
    config.preprocess = dataclasses.replace(preprocess_config, crop_size=config.augment.crop_size)
    if not physical:
        config.augment = dataclasses.replace(config.augment, physical=False)
    if config.encoder.in_channels != len(bands):
        config.encoder = dataclasses.replace(config.encoder, in_channels=len(bands))
    if config.train_indices is not None:
        dataset = torch.utils.data.Subset(dataset, list(config.train_indices))
    save_yaml_config(config, run_dir / "config.yaml")

    networks = ImageSSLModule(config, bands)
    bf16_layout(networks, config.run.resolved_precision(), config.run.accelerator())  # NHWC for bf16 on CPU
    module = StageModule(networks, config.run)
    return fit_stage(module, dataset, config.run, run_dir, str(config.data),
                     lambda model_dir, extra: export_image_encoder(networks.encoder, config, bands, model_dir, extra))
