"""Supervised baselines trained from scratch: what a network does with the labels alone, no pretraining.

The reference the self-supervised embeddings are compared with, so it is the simplest faithful thing: for
images the image encoder family (``small_cnn`` by default) with geometric augmentations; for spectra a small
1-D CNN on the normalised flux and its validity mask; a linear head; AdamW; cross-entropy for classes, mean
squared error on standardised targets for numbers. A plain PyTorch loop on purpose, with nothing of the
pretraining machinery in it. Training stops at a step or a wall-clock budget, whichever comes first (a
step budget is reproducible on a busy machine); a seeded tenth of the training rows picks the best
snapshot (evaluated each ``eval_every`` steps), so a long budget on few labels does not end overfitted.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

__all__ = ["SpectrumCNN", "SupervisedBaseline", "MODALITIES"]

MODALITIES = ("image", "spectrum")
VALIDATION_MIN = 50  # fewer training rows than this: no validation share, the last snapshot is kept


class SpectrumCNN(nn.Module):
    """Small 1-D CNN: (flux, valid) channels -> conv blocks with stride-2 pooling -> the mean over each of
    ``n_bins`` wavelength ranges, flattened. Binned, not global, pooling: where a line sits (the redshift)
    is lost by a global average of translation-invariant features.

    Parameters
    ----------
    widths : channels of each block.
    n_bins : wavelength ranges of the output; ``embed_dim = widths[-1] * n_bins``.
    """

    def __init__(self, widths=(16, 32, 64, 64), n_bins: int = 16):
        super().__init__()
        layers, channels = [], 2
        for width in widths:
            layers += [nn.Conv1d(channels, width, 7, padding=3), nn.BatchNorm1d(width), nn.GELU(), nn.MaxPool1d(2)]
            channels = width
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(n_bins), nn.Flatten())
        self.embed_dim = channels * n_bins

    def forward(self, spectra: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.stack([spectra["flux"] * spectra["valid"], spectra["valid"].float()], dim=1)
        return self.body(x)


def _rows(inputs, idx):
    idx = torch.as_tensor(idx) if isinstance(idx, np.ndarray) else idx
    return {k: v[idx] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[idx]


def _length(inputs) -> int:
    return len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)


class SupervisedBaseline(BaseEstimator):
    """A network trained from scratch on (inputs, labels), scikit-learn style.

    Parameters
    ----------
    modality : "image" (inputs: raw cutouts (N, bands, H, W) with ``bands`` named) or "spectrum" (inputs:
        the dict of :func:`~astroembed.preprocess.stored.prepare_stored_spectra`).
    task : "regression" or "classification".
    max_steps, minutes : training budget; whichever ends first (``minutes=None``: steps only).
    image_arch, crop_size : image encoder architecture and input side (pixels).
    widths : channels of the blocks (``small_cnn`` or :class:`SpectrumCNN`); None: their defaults.
    preprocess : a ``PreprocessConfig`` for the images (e.g. ``mode="rgb"`` for 8-bit colour cutouts); None:
        the arcsinh stretch, with scales fitted to the data's noise for bands it does not know.

    Attributes
    ----------
    model_ : nn.Module
        Encoder and linear head, best snapshot.
    classes_ : ndarray
        Class labels (classification).
    steps_, seconds_ : int, float
        Steps taken and wall time spent.
    """

    def __init__(self, modality: str = "image", task: str = "regression", max_steps: int = 500,
                 minutes: float | None = None, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4,
                 image_arch: str = "small_cnn", crop_size: int = 64, bands=("g", "r", "z"), widths=None,
                 preprocess=None, eval_every: int = 50, seed: int = 0, device: str = "cpu"):
        self.modality, self.task, self.max_steps, self.minutes = modality, task, max_steps, minutes
        self.batch_size, self.lr, self.weight_decay, self.image_arch = batch_size, lr, weight_decay, image_arch
        self.crop_size, self.bands, self.widths, self.eval_every = crop_size, bands, widths, eval_every
        self.preprocess, self.seed, self.device = preprocess, seed, device

    def _encoder(self, inputs) -> nn.Module:
        if self.modality == "spectrum":
            return SpectrumCNN(**({"widths": tuple(self.widths)} if self.widths else {}))
        from ..models.image_encoder import ImageEncoderConfig, build_image_encoder
        from ..preprocess.image import PreprocessConfig

        crop = min(self.crop_size, inputs.shape[-1])
        self.preprocess_ = PreprocessConfig(crop_size=crop) if self.preprocess is None else self.preprocess
        self.crop_ = crop = self.preprocess_.crop_size or crop
        unknown = [b for b in self.bands if b not in self.preprocess_.band_scales]
        if self.preprocess_.mode == "arcsinh" and unknown:  # scales from the data's own noise
            self.preprocess_ = PreprocessConfig.fit(inputs[:256], list(self.bands), crop_size=crop)
        return build_image_encoder(ImageEncoderConfig(arch=self.image_arch, in_channels=len(self.bands),
                                                      image_size=crop,
                                                      widths=tuple(self.widths) if self.widths else None))

    def _forward_input(self, batch, train: bool, generator=None):
        if self.modality == "spectrum":
            return {k: v.to(self.device) for k, v in batch.items()}
        from ..preprocess.image import preprocess

        if train:
            batch = self.augmenter_(batch, list(self.bands), generator=generator)
        return preprocess(batch.to(self.device), self.preprocess_, list(self.bands))

    def _targets(self, y) -> torch.Tensor:
        if self.task == "classification":
            self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
            return torch.as_tensor(codes, dtype=torch.long)
        y = np.asarray(y, np.float64)
        self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
        return torch.as_tensor((y - self.y_mean_) / self.y_std_, dtype=torch.float32)

    def _loss(self, output, target):
        if self.task == "classification":
            return nn.functional.cross_entropy(output, target)
        return nn.functional.mse_loss(output[:, 0], target)

    def fit(self, inputs, y):
        if self.modality not in MODALITIES or self.task not in ("regression", "classification"):
            raise ValueError(f"modality must be one of {MODALITIES} and task regression or classification, got "
                             f"{self.modality!r}, {self.task!r}")
        torch.manual_seed(self.seed)
        target = self._targets(y)
        encoder = self._encoder(inputs)
        n_out = len(self.classes_) if self.task == "classification" else 1
        self.model_ = nn.Sequential(encoder, nn.Linear(encoder.embed_dim, n_out)).to(self.device)
        if self.modality == "image":
            from ..augment.image import ImageAugmentConfig, ImageAugmenter

            self.augmenter_ = ImageAugmenter(ImageAugmentConfig(crop_size=self.crop_, physical=False))
        order = np.random.default_rng(self.seed).permutation(len(target))
        n_val = len(order) // 10 if len(order) >= VALIDATION_MIN else 0
        val, train = order[:n_val], order[n_val:]
        optimizer = torch.optim.AdamW(self.model_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        best, best_loss, self.steps_, start = None, np.inf, 0, time.perf_counter()
        deadline = start + 60 * self.minutes if self.minutes else np.inf
        while self.steps_ < self.max_steps and time.perf_counter() < deadline:
            for chunk in np.array_split(train[torch.randperm(len(train), generator=generator).numpy()],
                                        max(1, len(train) // self.batch_size)):
                self.model_.train()
                output = self.model_(self._forward_input(_rows(inputs, chunk), True, generator))
                loss = self._loss(output, target[chunk].to(self.device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                self.steps_ += 1
                done = self.steps_ >= self.max_steps or time.perf_counter() >= deadline
                if n_val and (self.steps_ % self.eval_every == 0 or done):
                    val_loss = self._loss(self._outputs(_rows(inputs, val)), target[val].to(self.device)).item()
                    if val_loss < best_loss:
                        best, best_loss = copy.deepcopy(self.model_.state_dict()), val_loss
                if done:
                    break
        if best is not None:
            self.model_.load_state_dict(best)
        self.seconds_ = time.perf_counter() - start
        return self

    @torch.no_grad()
    def _outputs(self, inputs) -> torch.Tensor:
        self.model_.eval()
        return torch.cat([self.model_(self._forward_input(_rows(inputs, slice(i, i + 256)), False))
                          for i in range(0, _length(inputs), 256)])

    def predict(self, inputs) -> np.ndarray:
        """Classes, or numbers in the targets' units."""
        out = self._outputs(inputs).float().cpu().numpy()
        if self.task == "classification":
            return self.classes_[out.argmax(1)]
        return out[:, 0] * self.y_std_ + self.y_mean_

    def predict_proba(self, inputs) -> np.ndarray:
        """Class probabilities (N, n_classes) in the order of ``classes_``."""
        if self.task != "classification":
            raise ValueError("predict_proba is defined for classification only")
        return torch.softmax(self._outputs(inputs).float(), 1).cpu().numpy()
