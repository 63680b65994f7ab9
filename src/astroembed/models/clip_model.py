"""The aligned (AstroCLIP) model: two or three encoders (image, spectrum, photometry), each followed by a
projection head into one shared, L2-normalised space where a galaxy's observations land close together.

    model = AlignedModel(image_encoder, spectrum_encoder, embed_dim=128)
    a = model.embed_image(preprocessed_cutouts)     # (N, 128) unit vectors
    b = model.embed_spectrum(prepare_batch(...))    # (N, 128) unit vectors
    similarity = a @ b.T

Saved as ``model_type: "aligned"``: ``config.json["model"]`` holds each encoder's own config under its
modality's name (``{"model_type", "model"}`` each, as their stages export them) and the head sizes; the
builder registered here rebuilds the encoders through :func:`astroembed.models.io.build_from_config`, so one
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

__all__ = ["AlignedModel", "MODALITIES", "build_aligned_model", "projection_head"]


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


MODALITIES = ("image", "spectrum", "photometry")


class AlignedModel(nn.Module):
    """Two or three encoders (image, spectrum, photometry), each followed by a projection head.

    Parameters
    ----------
    image_encoder
        module with ``embed_dim``; (N, B, H, W) preprocessed cutouts -> (N, embed_dim); or None.
    spectrum_encoder
        module with ``embed_dim``; a ``prepare_batch`` dict -> (N, embed_dim); or None.
    embed_dim
        size of the shared space.
    projection_hidden
        hidden width of every head (0: linear heads).
    image_config, spectrum_config, photometry_config
        ``{"model_type": ..., "model": {...}}`` describing each encoder, kept so the model can be
        saved and rebuilt (see :meth:`model_config`).
    photometry_encoder
        module with ``embed_dim``; a ``prepare_photometry`` dict -> (N, embed_dim); or None.

    At least two encoders are required. The attribute names (``image_encoder``, ``image_head``, ...)
    are the weight names in ``model.safetensors``: two-modality exports of earlier versions load as they are.
    """

    def __init__(self, image_encoder: nn.Module | None, spectrum_encoder: nn.Module | None, embed_dim: int = 128,
                 projection_hidden: int = 512, image_config: Mapping[str, Any] | None = None,
                 spectrum_config: Mapping[str, Any] | None = None, photometry_encoder: nn.Module | None = None,
                 photometry_config: Mapping[str, Any] | None = None):
        super().__init__()
        if not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {embed_dim!r}")
        if not isinstance(projection_hidden, int) or projection_hidden < 0:
            raise ValueError(f"projection_hidden must be an int >= 0, got {projection_hidden!r}")
        encoders = {"image": image_encoder, "spectrum": spectrum_encoder, "photometry": photometry_encoder}
        configs = {"image": image_config, "spectrum": spectrum_config, "photometry": photometry_config}
        self.modalities = tuple(m for m in MODALITIES if encoders[m] is not None)
        if len(self.modalities) < 2:
            raise ValueError(f"an aligned model needs at least two encoders, got {list(self.modalities)}")
        for m in MODALITIES:
            encoder = encoders[m]
            setattr(self, f"{m}_encoder", encoder)
            setattr(self, f"{m}_head", None if encoder is None
                    else projection_head(int(encoder.embed_dim), projection_hidden, embed_dim))
        self.embed_dim = embed_dim
        self.projection_hidden = projection_hidden
        self.encoder_configs = {m: dict(configs[m] or {}) for m in self.modalities}

    def encoder(self, modality: str) -> nn.Module:
        """The encoder of ``modality`` (an error naming the modalities this model has if it has none)."""
        if modality not in self.modalities:
            raise ValueError(f"this aligned model has no {modality} encoder; it aligns {list(self.modalities)}")
        return getattr(self, f"{modality}_encoder")

    def head(self, modality: str) -> nn.Module:
        """The projection head of ``modality`` into the shared space."""
        self.encoder(modality)
        return getattr(self, f"{modality}_head")

    def project(self, modality: str, inputs) -> torch.Tensor:
        """Un-normalised projections (N, embed_dim) of one modality's encoder input (what CLIP takes)."""
        return self.head(modality)(self.encoder(modality)(inputs))

    def embed(self, modality: str, inputs) -> torch.Tensor:
        """Unit vectors (N, embed_dim) in the shared space."""
        return F.normalize(self.project(modality, inputs).float(), dim=-1)

    def project_image(self, images: torch.Tensor) -> torch.Tensor:
        """Un-normalised projections (N, embed_dim) of preprocessed cutouts."""
        return self.project("image", images)

    def project_spectrum(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Un-normalised projections (N, embed_dim) of a ``prepare_batch`` dict."""
        return self.project("spectrum", batch)

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        """Unit vectors (N, embed_dim) in the shared space."""
        return self.embed("image", images)

    def embed_spectrum(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Unit vectors (N, embed_dim) in the shared space."""
        return self.embed("spectrum", batch)

    def embed_photometry(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Unit vectors (N, embed_dim) in the shared space from a ``prepare_photometry`` dict."""
        return self.embed("photometry", batch)

    def model_config(self) -> dict[str, Any]:
        """What :func:`build_aligned_model` needs to rebuild this architecture (``config.json["model"]``)."""
        if not all(self.encoder_configs.values()):
            raise ValueError("AlignedModel was built without the encoders' configs; it cannot be saved "
                             "in a form load_model can rebuild")
        return {**self.encoder_configs, "embed_dim": self.embed_dim, "projection_hidden": self.projection_hidden}


def build_aligned_model(config: Mapping[str, Any]) -> AlignedModel:
    """Rebuild a (randomly initialised) aligned model from :meth:`AlignedModel.model_config` output.

    Two-modality configs of earlier versions (keys ``image`` and ``spectrum``) build as before.
    """
    present = [m for m in MODALITIES if m in config]
    if len(present) < 2 or "embed_dim" not in config:
        raise ValueError(f"aligned model config needs embed_dim and two or three of {list(MODALITIES)} "
                         f"(keys: {sorted(config)})")
    encoders = {m: build_from_config(config[m]) if m in config else None for m in MODALITIES}
    return AlignedModel(encoders["image"], encoders["spectrum"], embed_dim=int(config["embed_dim"]),
                        projection_hidden=int(config.get("projection_hidden", 512)),
                        image_config=config.get("image"), spectrum_config=config.get("spectrum"),
                        photometry_encoder=encoders["photometry"], photometry_config=config.get("photometry"))


MODEL_TYPES.register("aligned", build_aligned_model)
