"""MoCo v2 (Chen et al. 2020; Hayat, Stein et al. 2021 on galaxies): a queue of past keys as negatives."""

from __future__ import annotations

import torch
from torch import nn

from astroembed.objectives.moco import MoCoLoss, MoCoQueue

from .base import SSL_METHODS
from .momentum import MomentumMethod


class MoCo(MomentumMethod):
    def __init__(self, encoder: nn.Module, config):
        super().__init__(encoder, config)
        self.queue = MoCoQueue(config.queue_size, config.projection_dim)
        self.loss = MoCoLoss(temperature=config.temperature)
        self.constant_momentum = config.momentum

    def training_loss(self, encoder: nn.Module, view_a: torch.Tensor, view_b: torch.Tensor) -> torch.Tensor:
        q_a, q_b, k_a, k_b = self.projections(encoder, view_a, view_b)
        # Symmetrised loss; the queue gets this batch's keys afterwards.
        loss = 0.5 * (self.loss(q_a, k_b, self.queue) + self.loss(q_b, k_a, self.queue))
        self.queue.enqueue(torch.cat([k_a, k_b]).float())
        return loss

    def momentum(self, step: int, total_steps: int) -> float:
        return self.constant_momentum


SSL_METHODS.register("moco", MoCo)
