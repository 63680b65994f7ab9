"""Masked modelling: contiguous-chunk masks and the inverse-variance weighted reconstruction loss.

A spectrum (or an image flattened to patches) is cut into P patches of L pixels. Some patches are
hidden from the encoder and the model predicts their pixels. Hiding *contiguous* runs of patches,
rather than scattered ones, stops the model from simply interpolating between visible neighbours
(the spectrum pre-training of AstroCLIP masks contiguous chunks for this reason).

The loss weights each pixel's squared error by its inverse variance, so noisy pixels count less and
pixels with no information (ivar = 0: masked, off the detector, bad) count not at all.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


def contiguous_chunk_mask(
    n_patches: int,
    mask_fraction: float,
    *,
    n_chunks: int | None = None,
    chunk_len: int | None = None,
    batch: int = 1,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Random masks made of separate contiguous chunks of patches; True = masked.

    Exactly ``M = round(mask_fraction * n_patches)`` patches are masked in every row. Give either
    ``n_chunks`` (M split into that many chunks whose lengths differ by at most one; fewer if
    M < n_chunks) or ``chunk_len``
    (chunks of that length, the last one shorter if ``chunk_len`` does not divide M). Chunks never
    touch, so each row has exactly that many runs; their positions are uniform over all such
    layouts, drawn independently per row.

    Returns a bool tensor of shape (batch, n_patches).
    """
    if n_patches < 1 or batch < 1:
        raise ValueError(f"n_patches and batch must be >= 1, got n_patches={n_patches}, batch={batch}")
    if not 0.0 <= mask_fraction <= 1.0:
        raise ValueError(f"mask_fraction must be in [0, 1], got {mask_fraction}")
    if (n_chunks is None) == (chunk_len is None):
        raise ValueError("give exactly one of n_chunks and chunk_len")
    n_masked = round(mask_fraction * n_patches)
    if n_masked == 0:
        return torch.zeros(batch, n_patches, dtype=torch.bool, device=device)

    if chunk_len is not None:
        if chunk_len < 1:
            raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
        k = -(-n_masked // chunk_len)
        lengths = torch.full((k,), chunk_len)
        lengths[-1] = n_masked - chunk_len * (k - 1)
    else:
        if n_chunks < 1:  # type: ignore[operator]
            raise ValueError(f"n_chunks must be >= 1, got {n_chunks}")
        k = min(int(n_chunks), n_masked)  # cannot have more chunks than masked patches
        lengths = torch.full((k,), n_masked // k)
        lengths[: n_masked % k] += 1
    n_visible = n_patches - n_masked
    if k > n_visible + 1:
        raise ValueError(
            f"cannot place {k} separate chunks covering {n_masked} of {n_patches} patches "
            f"(only {n_visible} visible patches to separate them); use fewer or longer chunks"
        )

    # Stars and bars: the n_visible patches leave n_visible + 1 gaps (before, between, after);
    # putting the k chunks into k distinct gaps, in order, gives every non-touching layout once.
    # Chunk j then starts after gap[j] visible patches and the masked patches of chunks 0..j-1.
    gaps = torch.rand(batch, n_visible + 1, generator=generator).argsort(dim=1)[:, :k].sort(dim=1).values
    order = torch.rand(batch, k, generator=generator).argsort(dim=1)  # shuffle lengths per row
    row_lengths = lengths[order]  # (batch, k)
    starts = gaps + row_lengths.cumsum(dim=1) - row_lengths
    pos = torch.arange(n_patches)
    inside = (pos >= starts[..., None]) & (pos < (starts + row_lengths)[..., None])  # (batch, k, P)
    return inside.any(dim=1).to(device)


def masked_reconstruction_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Inverse-variance weighted mean squared error over the masked patches.

    ``sum(mask * weight * (pred - target)**2) / sum(mask * weight)``, summing over batch, masked
    patches and their pixels. Shapes: pred, target, weight (B, P, L); mask (B, P) bool, True =
    masked (predicted). Pixels with weight 0 contribute nothing, even if their target is NaN, and
    receive zero gradient. If no masked pixel has weight > 0 the loss is 0, still connected to
    ``pred`` so ``backward()`` works.

    Weights must be non-negative and finite (the data layer guarantees this for ivar).
    """
    for name, t in (("pred", pred), ("target", target), ("weight", weight)):
        if t.ndim != 3:
            raise ValueError(f"{name} must be 3-D (batch, patches, pixels), got shape {tuple(t.shape)}")
    if target.shape != pred.shape or weight.shape != pred.shape:
        raise ValueError(
            f"pred, target and weight must have the same shape, got {tuple(pred.shape)}, "
            f"{tuple(target.shape)} and {tuple(weight.shape)}"
        )
    if mask.shape != pred.shape[:2]:
        raise ValueError(f"mask must have shape (batch, patches) = {tuple(pred.shape[:2])}, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = masked), got {mask.dtype}")

    valid = mask[..., None] & (weight > 0)
    # Zero the residual with where() before squaring: multiplying a NaN target by weight 0 would
    # give NaN, and where() after squaring would still send NaN gradients back through the square.
    residual = torch.where(valid, pred - target, torch.zeros((), dtype=pred.dtype, device=pred.device))
    w = torch.where(valid, weight, torch.zeros((), dtype=weight.dtype, device=weight.device))
    return (w * residual**2).sum() / w.sum().clamp_min(torch.finfo(w.dtype).tiny)


def masked_modelling_loss(model: nn.Module, batch: Mapping[str, torch.Tensor], mask_fraction: float = 0.3,
                          chunk_len: int = 6, generator: torch.Generator | None = None,
                          patch_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Masked-modelling loss of one batch: hide contiguous chunks of patches, predict their flux.

    The loss is :func:`masked_reconstruction_loss` of the predicted
    against the normalised flux on the hidden patches, each pixel weighted by its normalised inverse
    variance (bad and padded pixels weigh 0).

    Parameters
    ----------
    model
        the spectrum transformer (anything with ``forward_masked(batch, patch_mask)``).
    batch
        from ``prepare_batch``.
    mask_fraction
        fraction of patches hidden per spectrum.
    chunk_len
        patches per hidden chunk (6 patches of 20 px at stride 10 = 70 px, 140 A on the
        2 A grid: wider than any galaxy line, so lines must be predicted, not interpolated). The
        pretraining stage uses 12 (130 px: 520 A on the pipeline's 4 A grid), where a straight
        line across the gap also misses the continuum's curvature; on the built-in survey 12 gave
        both better reconstruction and better k-NN redshift than 6 (SpectrumPretrainConfig).
    generator
        for a reproducible mask (CPU generator).
    patch_mask
        use this (N, n_patches) mask instead of drawing one.
    """
    n, p = batch["patch_flux"].shape[:2]
    if patch_mask is None:
        patch_mask = contiguous_chunk_mask(p, mask_fraction, chunk_len=chunk_len, batch=n, generator=generator,
                                           device=batch["patch_flux"].device)
    pred = model.forward_masked(batch, patch_mask)
    return masked_reconstruction_loss(pred, batch["patch_flux"].to(pred.dtype), batch["patch_ivar"].to(pred.dtype),
                                      patch_mask)
