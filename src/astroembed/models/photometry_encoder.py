"""The photometry encoder: a small set transformer over one token per band.

    pre = fit_photometry_preprocess(flux, ivar, ("u", "g", "r", "i", "z"))
    model = PhotometryEncoder(PhotometryEncoderConfig(n_bands=5))
    vectors = model(prepare_photometry(flux, ivar, None, pre))     # (N, dim)

Each band is a token: a learned band embedding (which filter) plus an MLP of its two numbers (the
standardised arcsinh magnitude and log10 of its error, :mod:`astroembed.preprocess.photometry`). A
learned CLS token attends to the band tokens through a few pre-norm transformer blocks; its output,
layer-normed, is the embedding.

Why a set transformer and not an MLP on a fixed vector: a missing band must be *absent*, not a zero.
Here a masked band is left out of attention altogether (``src_key_padding_mask``), so the embedding
of a galaxy with g, r, z is computed from exactly those three tokens whatever the model's other bands
are; an MLP would need a placeholder value plus an indicator and would see every missing-band pattern
as a different input distribution. Colours, the quantities photometric redshifts live on, are
differences of two tokens, which attention forms directly. With 5-10 tokens the cost is that of a tiny
MLP. Saved as ``model_type: "photometry_encoder"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from astroembed.config import Config
from astroembed.models.registry import MODEL_TYPES

__all__ = ["PhotometryEncoderConfig", "PhotometryEncoder", "build_photometry_encoder"]

N_FEATURES = 2  # per band: standardised arcsinh magnitude, log10 magnitude error


@dataclass
class PhotometryEncoderConfig(Config):
    """Architecture of the photometry encoder (``config.json["model"]``)."""

    n_bands: int = 5
    dim: int = 64
    depth: int = 2
    num_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("n_bands", "dim", "depth", "num_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of num_heads ({self.num_heads})")


class PhotometryEncoder(nn.Module):
    """``forward({"values": (N, P, 2), "mask": (N, P) bool})`` -> (N, dim); masked bands are not attended to."""

    def __init__(self, config: PhotometryEncoderConfig | None = None):
        super().__init__()
        self.config = cfg = config or PhotometryEncoderConfig()
        self.embed_dim = cfg.dim
        self.band_embed = nn.Parameter(torch.zeros(cfg.n_bands, cfg.dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.value_embed = nn.Sequential(nn.Linear(N_FEATURES, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, cfg.dim))
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.num_heads, int(cfg.dim * cfg.mlp_ratio), cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        # No nested tensors: the output must not depend on which fast path a padding pattern takes.
        self.blocks = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.dim)
        nn.init.trunc_normal_(self.band_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        values, mask = batch["values"], batch["mask"].bool()
        n, p = mask.shape
        if p != self.config.n_bands or values.shape != (n, p, N_FEATURES):
            raise ValueError(f"expected values ({n}, {self.config.n_bands}, {N_FEATURES}) and mask "
                             f"({n}, {self.config.n_bands}), got {tuple(values.shape)} and {tuple(mask.shape)}")
        tokens = self.value_embed(values.to(self.band_embed.dtype)) + self.band_embed
        x = torch.cat([self.cls_token.expand(n, -1, -1), tokens], dim=1)
        # True = ignore; the CLS token is always attended to, so no row is all padding (no NaN).
        ignore = torch.cat([torch.zeros(n, 1, dtype=torch.bool, device=mask.device), ~mask], dim=1)
        x = self.blocks(x, src_key_padding_mask=ignore)
        return self.norm(x[:, 0])


def build_photometry_encoder(config: PhotometryEncoderConfig | Mapping[str, Any]) -> PhotometryEncoder:
    """Build the (randomly initialised) encoder a config or its ``to_dict()`` describes."""
    cfg = config if isinstance(config, PhotometryEncoderConfig) else PhotometryEncoderConfig.from_dict(config)
    return PhotometryEncoder(cfg)


MODEL_TYPES.register("photometry_encoder", build_photometry_encoder)
