"""What MoCo and BYOL share: a projection head and momentum (EMA) copies of the encoder and head."""

from __future__ import annotations

import copy

import torch
from torch import nn

from astroembed.models.heads import MoCoProjectionHead
from astroembed.objectives.moco import momentum_update

from .base import SSLMethod


class MomentumMethod(SSLMethod):
    """Online head plus target encoder and head, updated as an exponential moving average."""

    def __init__(self, encoder: nn.Module, config):
        super().__init__()
        self.head = MoCoProjectionHead(encoder.embed_dim, config.projection_hidden, config.projection_dim)
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_head = copy.deepcopy(self.head).requires_grad_(False)

    def projections(self, encoder: nn.Module, view_a: torch.Tensor, view_b: torch.Tensor):
        """Online projections of both views and (without gradient) their target projections."""
        q_a, q_b = self.head(encoder(view_a)), self.head(encoder(view_b))
        with torch.no_grad():
            k_a = self.target_head(self.target_encoder(view_a))
            k_b = self.target_head(self.target_encoder(view_b))
        return q_a, q_b, k_a, k_b

    def momentum(self, step: int, total_steps: int) -> float:
        raise NotImplementedError

    def update_target(self, encoder: nn.Module, step: int, total_steps: int) -> None:
        m = self.momentum(step, total_steps)
        momentum_update(encoder, self.target_encoder, m)
        momentum_update(self.head, self.target_head, m)
