"""Symmetric InfoNCE between two modalities (CLIP, Radford et al. 2021; AstroCLIP, Parker et al. 2024).

For N galaxies with an image embedding a_i and a spectrum embedding b_i, logits_ij = s * cos(a_i, b_j)
with a learnable scale s = exp(logit_scale). The loss is the mean of the cross-entropy image -> spectrum
(row i's target is column i) and spectrum -> image. Under DDP each process scores its own rows against
the other modality gathered from every process; its positives sit at offset rank * N.

With ``mask`` (N,) bool, only the pairs where it is True count: a galaxy observed in one of the two
modalities only is neither a query nor a candidate (its column is excluded from every row's softmax),
and the loss is the mean over the valid rows. With every row valid this is exactly the unmasked loss.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from astroembed.objectives import distributed
from astroembed.objectives.ntxent import check_pair


class CLIPOutput(NamedTuple):
    """What ``CLIPLoss(..., return_details=True)`` returns, for logging."""

    loss: torch.Tensor
    logits_a: torch.Tensor  # (N, N * world): this process's a vs. every b, scaled
    logits_b: torch.Tensor  # (N, N * world): this process's b vs. every a, scaled
    accuracy: torch.Tensor  # top-1 retrieval accuracy, mean of both directions (no grad)
    logit_scale: torch.Tensor  # exp(logit_scale) used (no grad)


class CLIPLoss(nn.Module):
    """CLIP's symmetric contrastive loss with a learnable temperature.

    Parameters
    ----------
    init_temperature
        initial temperature T; the parameter ``logit_scale`` starts at log(1 / T).
    max_logit_scale
        the scale exp(logit_scale) never exceeds this (CLIP: 100).
    learnable
        if False, ``logit_scale`` is a fixed buffer instead of a parameter.
    gather_distributed
        under DDP, use the other modality from all processes as negatives.

    ``forward(a, b)`` takes (N, D) embeddings of the two modalities (need not be normalised) and
    returns the scalar loss; with ``return_details=True`` it returns a :class:`CLIPOutput`.
    ``forward(a, b, mask=m)`` counts only the pairs where the (N,) bool ``m`` is True (a batch without
    any gives a zero loss that still carries the graph, so every DDP process runs the same backward).
    Under DDP every process must pass the same N (the gather needs equal shapes).
    """

    logit_scale: torch.Tensor

    def __init__(
        self,
        init_temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        learnable: bool = True,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if not init_temperature > 0:
            raise ValueError(f"init_temperature must be > 0, got {init_temperature}")
        if not max_logit_scale > 0:
            raise ValueError(f"max_logit_scale must be > 0, got {max_logit_scale}")
        self.max_log_scale = math.log(max_logit_scale)
        init = torch.tensor(min(math.log(1.0 / init_temperature), self.max_log_scale))
        if learnable:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)
        self.gather_distributed = gather_distributed

    def forward(self, a: torch.Tensor, b: torch.Tensor, return_details: bool = False,
                mask: torch.Tensor | None = None) -> torch.Tensor | CLIPOutput:
        check_pair(a, b, ("a", "b"))
        n = a.shape[0]
        gather = self.gather_distributed and distributed.is_distributed()
        if mask is not None and tuple(mask.shape) != (n,):
            raise ValueError(f"mask must have shape ({n},), got {tuple(mask.shape)}")
        if mask is None and n * (distributed.world_size() if gather else 1) < 2:
            raise ValueError(f"CLIP loss needs at least 2 pairs per batch to have negatives, got {n}")

        # Clamp the parameter itself rather than its use in the graph: a clamp in the graph has zero
        # gradient above the bound, so a scale that overshot would stay stuck there for good.
        # Every DDP process holds the same parameter, so they all clamp alike.
        with torch.no_grad():
            self.logit_scale.clamp_(max=self.max_log_scale)
        scale = self.logit_scale.exp()

        a = F.normalize(a, dim=1)
        b = F.normalize(b, dim=1)
        all_a = distributed.gather_with_grad(a) if gather else a
        all_b = distributed.gather_with_grad(b) if gather else b
        logits_a = scale * a @ all_b.T  # (n, nW)
        logits_b = scale * b @ all_a.T
        offset = distributed.rank() * n if gather else 0
        labels = offset + torch.arange(n, device=a.device)
        if mask is None:
            loss = (F.cross_entropy(logits_a, labels) + F.cross_entropy(logits_b, labels)) / 2
            rows = slice(None)
        else:
            rows = mask.bool()
            # (gathered as bytes: not every backend gathers bool tensors)
            columns = distributed.gather_no_grad(rows.to(torch.uint8)).bool() if gather else rows
            logits_a = logits_a.masked_fill(~columns[None], float("-inf"))
            logits_b = logits_b.masked_fill(~columns[None], float("-inf"))
            ce = (F.cross_entropy(logits_a[rows], labels[rows], reduction="sum")
                  + F.cross_entropy(logits_b[rows], labels[rows], reduction="sum"))
            loss = ce / (2 * rows.sum().clamp(min=1))
        if not return_details:
            return loss
        with torch.no_grad():
            hits_a = (logits_a[rows].argmax(1) == labels[rows]).float().mean()
            accuracy = (hits_a + (logits_b[rows].argmax(1) == labels[rows]).float().mean()) / 2
        return CLIPOutput(loss, logits_a, logits_b, accuracy, scale.detach())
