"""BYOL (Grill et al. 2020): a predictor on the online branch, no negatives, cosine momentum schedule."""

from __future__ import annotations

import torch
from torch import nn

from astroembed.models.heads import MoCoProjectionHead
from astroembed.objectives.byol import BYOLLoss
from astroembed.objectives.moco import cosine_momentum

from .base import SSL_METHODS
from .momentum import MomentumMethod


class BYOL(MomentumMethod):
    def __init__(self, encoder: nn.Module, config):
        super().__init__(encoder, config)
        self.predictor = MoCoProjectionHead(config.projection_dim, config.projection_hidden, config.projection_dim)
        self.loss = BYOLLoss()
        self.start_momentum = config.momentum

    def training_loss(self, encoder: nn.Module, view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
        q_a, q_b, k_a, k_b = self.projections(encoder, view_a, view_b)
        return self.loss(self.predictor(q_a), self.predictor(q_b), k_a, k_b)

    def momentum(self, step: int, total_steps: int) -> float:
        return cosine_momentum(step, max(total_steps, step + 1), start=self.start_momentum)


SSL_METHODS.register("byol", BYOL)
