"""`astroembed.load(path)`: an exported model that embeds data exactly as it is stored.

Imports no training code and needs no GPU. A model folder (``RUN/model``) holds ``config.json`` +
``model.safetensors``; the config carries the preprocessing the model was trained with, so

    model = astroembed.load("runs/image/model")
    vectors = model.embed(cutouts)          # (N, bands, H, W) raw flux, or (N, H, W, 3) uint8 RGB

returns an (N, D) float32 numpy array whatever the input's type or device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .augment.preprocess import PreprocessConfig, preprocess, standardize
from .data.records import InvalidDataError
from .models.io import content_hash, load_model

__all__ = ["load", "ImageEmbedder"]


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ImageEmbedder:
    """An image encoder plus its saved preprocessing."""

    modality = "image"

    def __init__(self, encoder: torch.nn.Module, config: dict[str, Any], path: Path,
                 device: str | torch.device | None = None):
        self.path = Path(path)
        self.config = config
        self.device = _device(device)
        self.encoder = encoder.to(self.device).eval()
        self.preprocess_config = PreprocessConfig.from_dict(config["preprocessing"])
        self.bands = tuple(config["bands"])
        self.embed_dim = int(config["embed_dim"])

    @property
    def name(self) -> str:
        return self.path.parent.name if self.path.name == "model" else self.path.name

    @property
    def content_hash(self) -> str:
        return content_hash(self.path)

    def prepare(self, images) -> torch.Tensor:
        """Raw cutouts as stored -> network input on the model's device."""
        x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
        if not isinstance(x, torch.Tensor):
            raise InvalidDataError(f"expected a numpy array or tensor, got {type(images).__name__}",
                                   field="image_array")
        if x.ndim == 3:  # a single cutout
            x = x[None]
        if x.ndim != 4:
            raise InvalidDataError(f"expected (N, bands, H, W) flux or (N, H, W, 3) uint8, got shape "
                                   f"{tuple(x.shape)}", field="image_array")
        rgb = self.preprocess_config.mode == "rgb"
        if rgb and x.dtype == torch.uint8:
            if x.shape[-1] != 3:
                raise InvalidDataError(f"uint8 cutouts must be (N, H, W, 3), got {tuple(x.shape)}",
                                       field="image_array")
            x = x.permute(0, 3, 1, 2)
        elif x.shape[1] != len(self.bands):
            raise InvalidDataError(f"the model expects {len(self.bands)} bands {list(self.bands)}, the input "
                                   f"has {x.shape[1]} (shape {tuple(x.shape)})", field="image_band")
        x = x.to(self.device, torch.float32)
        if not torch.isfinite(x).all():
            # Documented masking, as for records: non-finite pixels carry no information -> 0.
            x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        x = standardize(x, self.preprocess_config)
        return preprocess(x, self.preprocess_config, self.bands)

    @torch.inference_mode()
    def embed(self, images, batch_size: int = 256) -> np.ndarray:
        """(N, D) float32 embeddings of raw cutouts (numpy or torch, any device); one cutout -> (1, D)."""
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        if isinstance(images, torch.Tensor) and images.ndim == 3:
            images = images[None]
        if len(images) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self.encoder(self.prepare(images[i:i + batch_size])).float().cpu().numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    __call__ = embed


_EMBEDDERS = {"image_encoder": ImageEmbedder}


def register_embedder(model_type: str, cls) -> None:
    _EMBEDDERS[model_type] = cls


def load(path, device: str | torch.device | None = "cpu"):
    """Load an exported model folder (``config.json`` + ``model.safetensors``) for embedding."""
    path = Path(path)
    if (path / "model" / "config.json").is_file() and not (path / "config.json").is_file():
        path = path / "model"  # a run folder was given
    module, config = load_model(path)
    model_type = config["model_type"]
    if model_type not in _EMBEDDERS:
        raise InvalidDataError(f"model type {model_type!r} cannot embed; known: {sorted(_EMBEDDERS)}",
                               source=str(path / "config.json"), field="model_type")
    return _EMBEDDERS[model_type](module, config, path, device=device)
