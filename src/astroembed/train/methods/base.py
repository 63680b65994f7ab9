"""The interface every self-supervised image method implements, and their registry."""

from __future__ import annotations

import torch
from torch import nn

from astroembed.registry import Registry

__all__ = ["SSL_METHODS", "SSLMethod"]

SSL_METHODS = Registry("self-supervised method", builtins={
    "simclr": "astroembed.train.methods.simclr",
    "moco": "astroembed.train.methods.moco",
    "byol": "astroembed.train.methods.byol",
})


class SSLMethod(nn.Module):
    """Heads, targets and loss of one method. Built as ``cls(encoder, config)`` with the stage's encoder
    (to size heads and copy targets; not kept) and its :class:`~astroembed.train.image.ImagePretrainConfig`.
    """

    def training_loss(self, encoder: nn.Module, view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
        """The loss of one batch given two augmented views of it."""
        raise NotImplementedError

    def update_target(self, encoder: nn.Module, step: int, total_steps: int) -> None:
        """After each optimizer step: move target networks towards the online ones (no-op by default)."""
