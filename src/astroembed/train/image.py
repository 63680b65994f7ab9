"""Self-supervised pretraining of an image encoder: SimCLR, MoCo v2 or BYOL on astrophysical views.

    astroembed pretrain image --data PATH --out RUN [--config cfg.yaml] [--max-minutes M]

Augmentations run batched on the training device inside the step (the reference implementations
augment one image at a time on the CPU, which starves a GPU). Order: raw flux -> physical and
geometric views (flux units) -> preprocessing stretch -> encoder -> projection head -> loss.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..augment.image import ImageAugmentConfig, ImageAugmenter
from ..preprocess.image import PreprocessConfig, preprocess
from ..models.heads import MoCoProjectionHead, SimCLRProjectionHead
from ..models.image_encoder import ImageEncoderConfig, build_image_encoder
from ..models.io import save_model
from ..objectives.byol import BYOLLoss
from ..objectives.moco import MoCoLoss, MoCoQueue, cosine_momentum, momentum_update
from ..objectives.ntxent import NTXentLoss
from ..config import Config, config_to_dict, save_yaml_config
from .common import RunConfig, cosine_with_warmup, fit_stage
from .data import image_dataset

METHODS = ("simclr", "moco", "byol")


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
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")


class ImageSSLModule(nn.Module):
    """The networks of one method; kept free of Lightning so it can be used in a bare loop too."""

    def __init__(self, config: ImagePretrainConfig, bands: tuple[str, ...]):
        super().__init__()
        self.config = config
        self.bands = tuple(bands)
        self.encoder = build_image_encoder(config.encoder)
        dim = self.encoder.embed_dim
        if config.method == "simclr":
            self.head = SimCLRProjectionHead(dim, config.projection_hidden, config.projection_dim)
            self.loss = NTXentLoss(temperature=config.temperature)
        else:
            self.head = MoCoProjectionHead(dim, config.projection_hidden, config.projection_dim)
            self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
            self.target_head = copy.deepcopy(self.head).requires_grad_(False)
            if config.method == "moco":
                self.queue = MoCoQueue(config.queue_size, config.projection_dim)
                self.loss = MoCoLoss(temperature=config.temperature)
            else:
                self.predictor = MoCoProjectionHead(config.projection_dim, config.projection_hidden,
                                                    config.projection_dim)
                self.loss = BYOLLoss()
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
        method = self.config.method
        if method == "simclr":
            return self.loss(self.head(self.encoder(view_a)), self.head(self.encoder(view_b)))
        q_a, q_b = self.head(self.encoder(view_a)), self.head(self.encoder(view_b))
        with torch.no_grad():
            k_a = self.target_head(self.target_encoder(view_a))
            k_b = self.target_head(self.target_encoder(view_b))
        if method == "moco":  # symmetrised MoCo v2 loss; the queue gets this batch's keys afterwards
            loss = 0.5 * (self.loss(q_a, k_b, self.queue) + self.loss(q_b, k_a, self.queue))
            self.queue.enqueue(torch.cat([k_a, k_b]).float())
            return loss
        return self.loss(self.predictor(q_a), self.predictor(q_b), k_a, k_b)

    def update_target(self, step: int, total_steps: int) -> None:
        if self.config.method == "simclr":
            return
        m = (self.config.momentum if self.config.method == "moco"
             else cosine_momentum(step, max(total_steps, step + 1), start=self.config.momentum))
        momentum_update(self.encoder, self.target_encoder, m)
        momentum_update(self.head, self.target_head, m)


def _lightning_module(networks: ImageSSLModule, run: RunConfig):
    import lightning.pytorch as pl

    class ImagePretraining(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.networks = networks

        def training_step(self, batch, batch_idx):
            view_a, view_b = self.networks.views(batch)
            loss = self.networks.training_loss(view_a, view_b)
            self.log("train_loss", loss, prog_bar=True, batch_size=len(view_a), sync_dist=False)
            return loss

        def on_train_batch_end(self, outputs, batch, batch_idx):
            total = self.trainer.estimated_stepping_batches
            self.networks.update_target(self.global_step, int(total) if np.isfinite(total) else -1)

        def configure_optimizers(self):
            params = [p for p in self.networks.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=run.learning_rate, weight_decay=run.weight_decay)
            total = self.trainer.estimated_stepping_batches
            total = int(total) if np.isfinite(total) else -1
            scheduler = cosine_with_warmup(optimizer, run.warmup_steps, total)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    return ImagePretraining()


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
    module = _lightning_module(networks, config.run)
    return fit_stage(module, dataset, config.run, run_dir, str(config.data),
                     lambda model_dir, extra: export_image_encoder(networks.encoder, config, bands, model_dir, extra))


def config_summary(config: ImagePretrainConfig) -> dict:
    return config_to_dict(config)
