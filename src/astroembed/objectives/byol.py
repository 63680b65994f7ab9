"""BYOL's regression loss (Grill et al. 2020, arXiv:2006.07733).

The online network's prediction for one view regresses the target (EMA) network's projection of the
other view: ``2 - 2 cos(p, z)``, the squared distance of the two unit vectors. No negatives are
needed; the stop-gradient on the target and the EMA update (``moco.momentum_update`` with
``moco.cosine_momentum``) prevent collapse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from astroembed.objectives.ntxent import check_pair


class BYOLLoss(nn.Module):
    """Symmetrised BYOL loss.

    ``forward(p_a, p_b, z_a, z_b)``: online predictions p_a, p_b and target projections z_a, z_b of
    views a and b, all (N, D). Returns ``mean(2 - 2 cos(p_a, z_b)) + mean(2 - 2 cos(p_b, z_a))``
    (the paper's L + L~, in [0, 8]). The targets are detached here: the stop-gradient is part of
    the method, not an option.
    """

    def forward(self, p_a: torch.Tensor, p_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        check_pair(p_a, p_b, ("p_a", "p_b"))
        check_pair(z_a, z_b, ("z_a", "z_b"))
        check_pair(p_a, z_a, ("p_a", "z_a"))
        loss_ab = 2 - 2 * F.cosine_similarity(p_a, z_b.detach(), dim=1)
        loss_ba = 2 - 2 * F.cosine_similarity(p_b, z_a.detach(), dim=1)
        return loss_ab.mean() + loss_ba.mean()
