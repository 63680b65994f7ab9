"""A new image architecture, written as a newcomer would: this one file, ending with its registration.

Used by tests/models/test_new_architecture.py to show that nothing else in the package needs editing.
"""

import torch
from torch import nn

from astroembed.models.registry import IMAGE_ARCHITECTURES


class ToyEncoder(nn.Module):
    """Mean flux per band, through one linear layer: (N, bands, H, W) -> (N, 8)."""

    embed_dim = 8

    def __init__(self, in_channels: int):
        super().__init__()
        self.proj = nn.Linear(in_channels, self.embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images.mean(dim=(-2, -1)))


IMAGE_ARCHITECTURES.register("toy_mean", lambda cfg: ToyEncoder(cfg.in_channels), options=())
