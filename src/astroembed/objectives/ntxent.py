"""NT-Xent, the SimCLR contrastive loss (Chen et al. 2020, arXiv:2002.05709).

Two augmented views of N galaxies give 2N embeddings. Each embedding is an anchor whose positive is
the other view of the same galaxy and whose negatives are the other 2N - 2 embeddings; the loss is
the cross-entropy of a (2N - 1)-way softmax over cosine similarities / temperature, averaged over
the 2N anchors.

Under DDP the negatives come from every process (see :mod:`astroembed.objectives.distributed`), so
a per-process batch of n with W processes behaves like one batch of N = W * n.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from astroembed.objectives import distributed


def check_pair(z_a: torch.Tensor, z_b: torch.Tensor, names: tuple[str, str] = ("z_a", "z_b")) -> None:
    """Raise ValueError unless ``z_a`` and ``z_b`` are floating (N, D) tensors of the same shape."""
    for name, z in zip(names, (z_a, z_b)):
        if not isinstance(z, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
        if z.ndim != 2:
            raise ValueError(f"{name} must be 2-D (batch, dim), got shape {tuple(z.shape)}")
        if not z.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {z.dtype}")
    if z_a.shape != z_b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )


class NTXentLoss(nn.Module):
    """SimCLR's normalised temperature-scaled cross-entropy loss.

    Parameters
    ----------
    temperature
        softmax temperature (> 0); SimCLR uses 0.1 to 0.5.
    gather_distributed
        under DDP, use the embeddings of all processes as negatives.

    ``forward(z_a, z_b)`` takes the two views' embeddings, (N, D) each, row i of both being the same
    galaxy; they need not be normalised. Returns the scalar loss (mean over this process's 2N anchors).
    Under DDP every process must pass the same N (the gather needs equal shapes; use drop_last).
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        check_pair(z_a, z_b)
        n = z_a.shape[0]
        gather = self.gather_distributed and distributed.is_distributed()
        n_procs = distributed.world_size() if gather else 1
        if n * n_procs < 2:
            raise ValueError(f"NT-Xent needs at least 2 galaxies per batch to have negatives, got {n * n_procs}")

        local = F.normalize(torch.cat([z_a, z_b]), dim=1)  # (2n, D): view a then view b
        everyone = distributed.gather_with_grad(local) if gather else local  # (2nW, D), rank-major
        logits = local @ everyone.T / self.temperature  # (2n, 2nW)

        # Row j of `local` is row offset + j of `everyone`; its positive is the other view,
        # n rows further on (view a) or back (view b), inside this process's block.
        offset = distributed.rank() * 2 * n if gather else 0
        rows = torch.arange(2 * n, device=local.device)
        self_idx = offset + rows
        positive_idx = offset + (rows + n) % (2 * n)
        logits = logits.masked_fill(F.one_hot(self_idx, logits.shape[1]).bool(), float("-inf"))
        return F.cross_entropy(logits, positive_idx)
