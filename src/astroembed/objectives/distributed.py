"""Gather helpers for contrastive losses under torch.distributed (DDP).

Contrastive losses get better with more negatives, so under DDP each process compares its own
anchors against the embeddings of *every* process. Two kinds of gather are needed:

- :func:`gather_with_grad` for embeddings that are still part of the graph (SimCLR, CLIP). It uses
  ``torch.distributed.nn.functional.all_gather``, whose backward sums the gradient each process
  computes for a gathered slice and sends it back to the process that owns that slice. With DDP's
  gradient averaging this makes the per-process loss (own anchors vs. all negatives) train exactly
  like the loss on the global batch.
- :func:`gather_no_grad` for tensors that are constants (MoCo keys before they enter the queue).

Outside DDP (not initialised, or world size 1) both return their input unchanged, so losses need no
special case for single-process training.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when torch.distributed is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 outside DDP)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process (0 outside DDP)."""
    return dist.get_rank() if is_distributed() else 0


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all processes along dim 0, keeping the autograd graph.

    Every process must pass a tensor of the same shape. Rows ``rank * len(x) : (rank + 1) * len(x)``
    of the result are this process's own ``x``.
    """
    if not is_distributed():
        return x
    # Imported lazily: torch.distributed.nn pulls in RPC machinery that some builds lack.
    from torch.distributed.nn.functional import all_gather

    # torch 2.13 marks this autograd-aware gather deprecated in favour of a private module
    # (torch.distributed._functional_collectives); until a public replacement exists, keep the public one
    # and keep its notice out of every training step's output.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*all_gather is deprecated.*", category=FutureWarning)
        return torch.cat(all_gather(x), dim=0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all processes along dim 0, as a constant (no gradient)."""
    if not is_distributed():
        return x.detach()
    x = x.detach().contiguous()
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x)
    return torch.cat(parts, dim=0)
