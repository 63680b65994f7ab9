"""Image-encoder configuration (plain data, JSON round-trip) and the one builder that turns it into a module.

Every encoder built here maps (N, in_channels, H, W) float images to (N, embed_dim) embeddings and has an
``embed_dim`` attribute:

==============  ==========  ==========================================================================
arch            embed_dim   when to use it
==============  ==========  ==========================================================================
``small_cnn``   256         default; ~1.2M parameters, trains on a CPU on 64x64 cutouts
``resnet18``    512         GPU; ``small_input=True`` for cutouts under ~100 px
``resnet50``    2048        GPU, large surveys
``vit_s8``      384         GPU; DINO ViT-S/8, or a tiny CPU variant via ``embed_dim``/``depth``/...
==============  ==========  ==========================================================================

Example::

    cfg = ImageEncoderConfig(arch="vit_s8", in_channels=5, image_size=64, embed_dim=64, depth=2, num_heads=2)
    encoder = build_image_encoder(cfg)                       # (N, 5, 64, 64) -> (N, 64)
    same = ImageEncoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from torch import nn

from astroembed.config import Config
from astroembed.models.registry import IMAGE_ARCHITECTURES, MODEL_TYPES

__all__ = ["ImageEncoderConfig", "build_image_encoder"]

# The optional fields below belong to particular architectures (each registers the ones it understands, see
# models/registry.py); setting one for another arch is an error rather than silently ignored, so a config
# always describes the model it builds.
_OPTIONAL_FIELDS = ("small_input", "zero_init_residual", "widths", "patch_size", "embed_dim", "depth", "num_heads",
                    "mlp_ratio", "drop_path_rate")


@dataclass
class ImageEncoderConfig(Config):
    """Architecture of an image encoder. Plain data: ``to_dict``/``from_dict`` round-trip through JSON.

    Attributes
    ----------
    arch
        a registered architecture (``IMAGE_ARCHITECTURES.names()``: small_cnn, resnet18, resnet50, vit_s8).
    in_channels
        number of image bands (any positive number, e.g. 5 for grizy).
    image_size
        side of the training cutouts in pixels. The ViT learns positional embeddings for this
        size (other sizes are interpolated); the CNNs accept any size and only record it.
    small_input
        ResNet only. 3x3 stride-1 stem without max-pool (CIFAR-style), for 32-96 px cutouts.
    zero_init_residual
        ResNet only. Zero the last BN gamma of each block (residual branch starts at 0).
    widths
        small_cnn only. Stage widths; default (32, 64, 128, 256).
    patch_size, embed_dim, depth, num_heads, mlp_ratio
        ViT only. Override ViT-S/8's 8, 384, 12, 6, 4.0.
    drop_path_rate
        ViT only. Stochastic-depth rate of the last block.
    """

    arch: str = "small_cnn"
    in_channels: int = 3
    image_size: int = 64
    small_input: bool = False
    zero_init_residual: bool = False
    widths: tuple[int, ...] | None = None
    patch_size: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    mlp_ratio: float | None = None
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.arch not in IMAGE_ARCHITECTURES:
            raise ValueError(f"unknown image encoder arch {self.arch!r}; choose one of {IMAGE_ARCHITECTURES.names()}")
        for name in ("in_channels", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.widths is not None:
            self.widths = tuple(self.widths)
        if not 0.0 <= float(self.drop_path_rate) < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate!r}")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        allowed = IMAGE_ARCHITECTURES.info(self.arch).get("options", ())
        for name in _OPTIONAL_FIELDS:
            if name not in allowed and getattr(self, name) != defaults[name]:
                raise ValueError(f"option {name}={getattr(self, name)!r} does not apply to arch {self.arch!r} "
                                 f"(its options: {list(allowed)})")


def build_image_encoder(config: ImageEncoderConfig | Mapping[str, Any]) -> nn.Module:
    """Build the encoder a config describes (randomly initialised; seed torch for a reproducible init).

    Parameters
    ----------
    config
        an :class:`ImageEncoderConfig` or its ``to_dict()`` form.

    Returns
    -------
    An ``nn.Module`` with attribute ``embed_dim``; forward maps (N, in_channels, H, W) -> (N, embed_dim).
    """
    cfg = config if isinstance(config, ImageEncoderConfig) else ImageEncoderConfig.from_dict(config)
    return IMAGE_ARCHITECTURES[cfg.arch](cfg)


MODEL_TYPES.register("image_encoder", build_image_encoder)
