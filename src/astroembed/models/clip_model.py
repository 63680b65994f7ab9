"""The aligned (AstroCLIP) model: an image encoder and a spectrum encoder, each followed by a projection
head into one shared, L2-normalised space where a galaxy's image and spectrum land close together.

    model = AlignedModel(image_encoder, spectrum_encoder, embed_dim=128)
    a = model.embed_image(preprocessed_cutouts)     # (N, 128) unit vectors
    b = model.embed_spectrum(prepare_batch(...))    # (N, 128) unit vectors
    similarity = a @ b.T

Saved as ``model_type: "aligned"``: ``config.json["model"]`` holds both encoders' own configs
(``{"model_type", "model"}`` each, as their stages export them) and the head sizes; the builder
registered here rebuilds both encoders through :func:`astroembed.models.io.build_from_config`, so one
``model.safetensors`` holds every weight. The heads are MLPs without BatchNorm (MoCo v2 style): CLIP
batches are split across processes under DDP and BatchNorm statistics of a per-process batch of a
few galaxies are noise.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from astroembed.models.heads import MoCoProjectionHead
from astroembed.models.io import build_from_config
from astroembed.models.registry import MODEL_TYPES

__all__ = ["AlignedModel", "build_aligned_model", "projection_head"]


def projection_head(input_dim: int, hidden_dim: int, output_dim: int) -> nn.Module:
    """Feature standardisation -> Linear -> ReLU -> Linear into the shared space (``hidden_dim=0``: one Linear).

    Backbone features come at arbitrary offsets and scales and are dominated by a part every galaxy
    shares (the cross-galaxy spread of a freshly pretrained encoder is a few % of its mean). A
    non-affine BatchNorm standardises each feature over the batch in training and with its running
    statistics at inference, so the head sees the differences between galaxies from the first step.
    """
    norm = nn.BatchNorm1d(input_dim, affine=False)
    if hidden_dim == 0:
        return nn.Sequential(norm, nn.Linear(input_dim, output_dim))
    return nn.Sequential(norm, MoCoProjectionHead(input_dim, hidden_dim, output_dim))


class AlignedModel(nn.Module):
    """Image encoder + spectrum encoder + one projection head each.

    Parameters
    ----------
    image_encoder
        module with ``embed_dim``; (N, B, H, W) preprocessed cutouts -> (N, embed_dim).
    spectrum_encoder
        module with ``embed_dim``; a ``prepare_batch`` dict -> (N, embed_dim).
    embed_dim
        size of the shared space.
    projection_hidden
        hidden width of both heads (0: linear heads).
    image_config, spectrum_config
        ``{"model_type": ..., "model": {...}}`` describing the encoders,
        kept so the model can be saved and rebuilt (see :meth:`model_config`).
    """

    def __init__(self, image_encoder: nn.Module, spectrum_encoder: nn.Module, embed_dim: int = 128,
                 projection_hidden: int = 512, image_config: Mapping[str, Any] | None = None,
                 spectrum_config: Mapping[str, Any] | None = None):
        super().__init__()
        if not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {embed_dim!r}")
        if not isinstance(projection_hidden, int) or projection_hidden < 0:
            raise ValueError(f"projection_hidden must be an int >= 0, got {projection_hidden!r}")
        self.image_encoder = image_encoder
        self.spectrum_encoder = spectrum_encoder
        self.image_head = projection_head(int(image_encoder.embed_dim), projection_hidden, embed_dim)
        self.spectrum_head = projection_head(int(spectrum_encoder.embed_dim), projection_hidden, embed_dim)
        self.embed_dim = embed_dim
        self.projection_hidden = projection_hidden
        self.image_config = dict(image_config or {})
        self.spectrum_config = dict(spectrum_config or {})

    def project_image(self, images: torch.Tensor) -> torch.Tensor:
        """Un-normalised projections (N, embed_dim) of preprocessed cutouts (what the CLIP loss takes)."""
        return self.image_head(self.image_encoder(images))

    def project_spectrum(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Un-normalised projections (N, embed_dim) of a ``prepare_batch`` dict."""
        return self.spectrum_head(self.spectrum_encoder(batch))

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        """Unit vectors (N, embed_dim) in the shared space."""
        return F.normalize(self.project_image(images).float(), dim=-1)

    def embed_spectrum(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Unit vectors (N, embed_dim) in the shared space."""
        return F.normalize(self.project_spectrum(batch).float(), dim=-1)

    def model_config(self) -> dict[str, Any]:
        """What :func:`build_aligned_model` needs to rebuild this architecture (``config.json["model"]``)."""
        if not self.image_config or not self.spectrum_config:
            raise ValueError("AlignedModel was built without image_config/spectrum_config; it cannot be saved "
                             "in a form load_model can rebuild")
        return {"image": self.image_config, "spectrum": self.spectrum_config,
                "embed_dim": self.embed_dim, "projection_hidden": self.projection_hidden}


def build_aligned_model(config: Mapping[str, Any]) -> AlignedModel:
    """Rebuild a (randomly initialised) aligned model from :meth:`AlignedModel.model_config` output."""
    missing = {"image", "spectrum", "embed_dim"} - set(config)
    if missing:
        raise ValueError(f"aligned model config lacks {sorted(missing)} (keys: {sorted(config)})")
    return AlignedModel(build_from_config(config["image"]), build_from_config(config["spectrum"]),
                        embed_dim=int(config["embed_dim"]), projection_hidden=int(config.get("projection_hidden", 512)),
                        image_config=config["image"], spectrum_config=config["spectrum"])


MODEL_TYPES.register("aligned", build_aligned_model)
