"""MoCo v2: InfoNCE against a queue of momentum-encoded keys.

He et al. 2020 (arXiv:1911.05722) and Chen et al. 2020, "Improved baselines with momentum
contrastive learning" (arXiv:2003.04297). A query from the online encoder is pulled towards the key
of the same galaxy from a slowly moving (EMA) target encoder and pushed away from K keys of earlier
batches held in a FIFO queue, so the number of negatives does not depend on the batch size.

A training step, in order::

    q = online(view_a)
    with torch.no_grad():
        momentum_update(online, target, m=0.999)
        k = target(view_b)
    loss = criterion(q, k, queue.keys)
    queue.enqueue(k)  # after the loss: a key must not be its own negative
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from astroembed.objectives import distributed
from astroembed.objectives.ntxent import check_pair


class MoCoQueue(nn.Module):
    """Fixed-size FIFO ring buffer of L2-normalised keys, shape (size, dim).

    The keys and the write pointer are buffers, so they move with ``.to(device)`` and are saved in
    the state dict: a resumed run continues with the negatives it had. The queue starts filled with
    random unit vectors, as in the MoCo reference code, so the loss is defined from the first step.

    Parameters
    ----------
    size
        number of keys K.
    dim
        embedding dimension D.
    gather_distributed
        under DDP, enqueue the keys of all processes (rank-major order), so every
        process holds the same queue.
    generator
        random generator for the initial keys (for reproducible runs).
    """

    keys: torch.Tensor
    ptr: torch.Tensor

    def __init__(
        self, size: int, dim: int, gather_distributed: bool = True, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be >= 1, got size={size}, dim={dim}")
        self.size = int(size)
        self.dim = int(dim)
        self.gather_distributed = gather_distributed
        self.register_buffer("keys", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (B, D) over the oldest entries, wrapping around the end of the buffer.

        B need not divide the queue size. The result is the same as writing the keys one at a time
        at the pointer and advancing it, so if more than ``size`` keys arrive at once (after the DDP
        gather) only the newest ``size`` survive.
        """
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"keys must have shape (batch, {self.dim}), got {tuple(keys.shape)}")
        if self.gather_distributed:
            keys = distributed.gather_no_grad(keys)
        keys = F.normalize(keys.detach(), dim=1).to(device=self.keys.device, dtype=self.keys.dtype)
        n = keys.shape[0]
        start = self.ptr
        if n > self.size:  # the older keys would be overwritten within this same call
            start = (start + n - self.size) % self.size
            keys = keys[-self.size :]
        # Positions (start + i) % size: one indexed write handles the wrap-around.
        idx = (start + torch.arange(keys.shape[0], device=self.keys.device)) % self.size
        self.keys[idx] = keys
        self.ptr.copy_((self.ptr + n) % self.size)

    def forward(self) -> torch.Tensor:
        """The current keys, (size, dim), detached."""
        return self.keys.detach()


class MoCoLoss(nn.Module):
    """InfoNCE of each query against its positive key and a bank of negative keys.

    Parameters
    ----------
    temperature
        softmax temperature (> 0); MoCo v2 uses 0.2.

    ``forward(query, key, negatives)``: query and key are (N, D), row i of both being the same galaxy;
    negatives is (K, D) (``MoCoQueue.keys``) or a :class:`MoCoQueue`. All are L2-normalised here.
    Returns the mean over the N queries of -log softmax(q.k+ / T over [k+, negatives]).
    Gradients flow into every argument that requires them; in MoCo the key comes from the target
    encoder under ``torch.no_grad()``, so only the query is trained.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor | MoCoQueue) -> torch.Tensor:
        check_pair(query, key, ("query", "key"))
        if isinstance(negatives, MoCoQueue):
            negatives = negatives.keys
        if negatives.ndim != 2 or negatives.shape[1] != query.shape[1]:
            raise ValueError(
                f"negatives must have shape (K, {query.shape[1]}), got {tuple(negatives.shape)}"
            )
        q = F.normalize(query, dim=1)
        k = F.normalize(key, dim=1)
        neg = F.normalize(negatives.to(q.dtype), dim=1)
        positive = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
        logits = torch.cat([positive, q @ neg.T], dim=1) / self.temperature  # (N, 1 + K)
        target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # positive is column 0
        return F.cross_entropy(logits, target)


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """EMA update of the target's parameters: ``target = m * target + (1 - m) * online``.

    Only parameters are averaged; buffers (e.g. BatchNorm running statistics) are the target's own,
    as in MoCo and BYOL. The two modules must have the same parameter names and shapes.
    """
    if not 0.0 <= m <= 1.0:
        raise ValueError(f"momentum m must be in [0, 1], got {m}")
    online_params = dict(online.named_parameters())
    target_params = dict(target.named_parameters())
    if online_params.keys() != target_params.keys():
        missing = sorted(online_params.keys() ^ target_params.keys())
        raise ValueError(f"online and target modules have different parameters: {missing[:5]}")
    for name, p_target in target_params.items():
        p_online = online_params[name]
        if p_online.shape != p_target.shape:
            raise ValueError(f"parameter {name!r}: online {tuple(p_online.shape)} vs target {tuple(p_target.shape)}")
        # lerp_(end, w) = self + w * (end - self) = m * self + (1 - m) * end for w = 1 - m.
        p_target.lerp_(p_online.to(p_target.dtype), 1.0 - m)


def cosine_momentum(step: int, total_steps: int, start: float = 0.996, end: float = 1.0) -> float:
    """BYOL's momentum schedule: ``end - (end - start) * (cos(pi * step / total_steps) + 1) / 2``.

    Goes from ``start`` at step 0 to ``end`` at ``total_steps`` (and stays there afterwards).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    t = min(max(step, 0), total_steps) / total_steps
    return end - (end - start) * (math.cos(math.pi * t) + 1) / 2
