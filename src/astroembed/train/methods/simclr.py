"""SimCLR (Chen et al. 2020): an MLP projection head and the NT-Xent loss over the batch's two views."""

from __future__ import annotations

import torch
from torch import nn

from astroembed.models.heads import SimCLRProjectionHead
from astroembed.objectives.ntxent import NTXentLoss

from .base import SSL_METHODS, SSLMethod


class SimCLR(SSLMethod):
    def __init__(self, encoder: nn.Module, config):
        super().__init__()
        self.head = SimCLRProjectionHead(encoder.embed_dim, config.projection_hidden, config.projection_dim)
        self.loss = NTXentLoss(temperature=config.temperature)

    def training_loss(self, encoder: nn.Module, view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
        return self.loss(self.head(encoder(view_a)), self.head(encoder(view_b)))


SSL_METHODS.register("simclr", SimCLR)
