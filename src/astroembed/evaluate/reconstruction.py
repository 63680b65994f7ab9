"""Masked-modelling quality: the model's reconstruction of hidden spectral chunks against the simplest
honest baseline, linear interpolation across each hidden chunk from the visible pixels around it.

Both are scored by the same ivar-weighted MSE on the same hidden pixels (normalised flux units), so
the ratio says how much the transformer knows beyond "the continuum is locally straight".
"""

from __future__ import annotations

import torch

from ..preprocess.spectrum import interpolate_gaps, patches_to_pixels, patchify
from ..objectives.masked import contiguous_chunk_mask, masked_reconstruction_loss


@torch.no_grad()
def reconstruction_report(model, batch: dict, mask_fraction: float = 0.3, chunk_len: int = 6,
                          seed: int = 0) -> dict[str, float]:
    """ivar-weighted MSE on hidden chunks: the model vs linear interpolation (same chunks, same weights).

    Returns ``model_mse``, ``interpolation_mse``, their ``ratio`` (< 1: the model beats interpolation;
    None when interpolation is exact), and the settings. The chunks are drawn from ``seed``, the same
    for every call, so two models are compared on the same hidden pixels.
    """
    model.eval()
    n, p, size = batch["patch_flux"].shape
    stride = model.config.patch_stride
    generator = torch.Generator().manual_seed(seed)
    patch_mask = contiguous_chunk_mask(p, mask_fraction, chunk_len=chunk_len, batch=n, generator=generator)
    pred = model.forward_masked(batch, patch_mask).float()
    target, weight = batch["patch_flux"].float(), batch["patch_ivar"].float()
    model_mse = float(masked_reconstruction_loss(pred, target, weight, patch_mask))
    hidden = patches_to_pixels(patch_mask, size, stride, batch["flux"].shape[1])
    usable = batch["valid"].bool() & ~hidden
    interp = patchify(interpolate_gaps(batch["flux"].float(), usable), size, stride)
    interp_mse = float(masked_reconstruction_loss(interp, target, weight, patch_mask))
    # ratio None: interpolation is exact on these chunks (straight spectra), so no ratio is defined
    ratio = model_mse / interp_mse if interp_mse > 0 else None
    return {"model_mse": model_mse, "interpolation_mse": interp_mse, "ratio": ratio,
            "n_spectra": n, "mask_fraction": mask_fraction, "chunk_len": chunk_len}
