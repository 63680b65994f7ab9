"""A compact conv net for training on a CPU: the default image encoder for 64x64 galaxy cutouts.

At 64 px, ResNet-18 costs 0.15 GMAC per image with the ImageNet stem (which throws away resolution
early) and 2.2 GMAC with the small stem: too slow to pretrain with contrastive batches on a laptop. This
net keeps a full-resolution 3x3 stem (faint, compact galaxies are only a few pixels across, so the first
layer should see every pixel), then halves the resolution at the start of each of four stages (widths
32-64-128-256 by default) and ends in global average pooling: 1.18M parameters (3 bands), 0.065 GMAC per
64x64 image, ``embed_dim`` = the last width (256).

Layout (names matter only for checkpoints): ``stem`` = conv3x3-BN-ReLU; ``stages.i`` = [conv3x3 stride 2,
BN, ReLU, conv3x3, BN, ReLU]. Convs have no bias (BN follows); init as in ResNet (kaiming fan_out).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from astroembed.models._checks import check_images
from astroembed.models.registry import IMAGE_ARCHITECTURES

__all__ = ["SmallCNN", "DEFAULT_WIDTHS"]

DEFAULT_WIDTHS = (32, 64, 128, 256)


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Compact CNN encoder: (N, in_channels, H, W) -> (N, widths[-1]).

    Parameters
    ----------
    in_channels
        number of image bands.
    widths
        channels of the stages; each stage halves the resolution (64 px -> 4 px for four stages).
    """

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = DEFAULT_WIDTHS):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths}")
        self.in_channels, self.widths, self.embed_dim = in_channels, widths, widths[-1]
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, widths[0]))
        stages, c_in = [], widths[0]
        for w in widths:
            stages.append(nn.Sequential(*_conv_bn_relu(c_in, w, stride=2), *_conv_bn_relu(w, w)))
            c_in = w
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)


IMAGE_ARCHITECTURES.register(
    "small_cnn", lambda cfg: SmallCNN(cfg.in_channels, DEFAULT_WIDTHS if cfg.widths is None else cfg.widths),
    options=("widths",))
