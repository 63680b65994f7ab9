"""Projection heads: the small MLPs that map encoder embeddings into the space a contrastive loss works in.

Heads are used in pretraining only; the saved, embedded representation is the encoder output before the
head (Chen et al. 2020 show it transfers better than the projection).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SimCLRProjectionHead", "MoCoProjectionHead"]


def _check_dims(**dims: int) -> None:
    for name, value in dims.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


class SimCLRProjectionHead(nn.Sequential):
    """SimCLR head (Chen et al. 2020): Linear -> BatchNorm1d -> ReLU -> Linear.

    The first Linear has no bias because the BatchNorm after it has its own shift.

    Parameters
    ----------
    input_dim
        encoder ``embed_dim``.
    hidden_dim
        width of the hidden layer; default ``input_dim``, as in SimCLR (2048 for ResNet-50).
    output_dim
        dimension the loss sees (SimCLR: 128).
    """

    def __init__(self, input_dim: int, hidden_dim: int | None = None, output_dim: int = 128):
        hidden_dim = input_dim if hidden_dim is None else hidden_dim
        _check_dims(input_dim=input_dim, hidden_dim=hidden_dim, output_dim=output_dim)
        super().__init__(nn.Linear(input_dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
                         nn.ReLU(inplace=True), nn.Linear(hidden_dim, output_dim))
        self.input_dim, self.hidden_dim, self.output_dim = input_dim, hidden_dim, output_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"expected embeddings of shape (N, {self.input_dim}), got {tuple(x.shape)}")
        return super().forward(x)


class MoCoProjectionHead(nn.Sequential):
    """MoCo v2 head (Chen et al. 2020, "Improved baselines"): Linear -> ReLU -> Linear, no BatchNorm.

    Parameters
    ----------
    input_dim
        encoder ``embed_dim``.
    hidden_dim
        width of the hidden layer (MoCo v2: 2048).
    output_dim
        dimension the loss sees (MoCo v2: 128).
    """

    def __init__(self, input_dim: int, hidden_dim: int = 2048, output_dim: int = 128):
        _check_dims(input_dim=input_dim, hidden_dim=hidden_dim, output_dim=output_dim)
        super().__init__(nn.Linear(input_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, output_dim))
        self.input_dim, self.hidden_dim, self.output_dim = input_dim, hidden_dim, output_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"expected embeddings of shape (N, {self.input_dim}), got {tuple(x.shape)}")
        return super().forward(x)
