"""Input checks shared by the image encoders."""

from __future__ import annotations

import torch


def check_images(x: torch.Tensor, in_channels: int) -> None:
    """Fail with a readable message instead of a conv shape error from deep inside torch."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"expected images of shape (N, {in_channels}, H, W), got {tuple(x.shape)}")
