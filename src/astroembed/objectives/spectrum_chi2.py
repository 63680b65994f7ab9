"""The spectrum decoder's loss: chi^2 per degree of freedom against the observed spectrum, plus the scale.

For galaxy n with normalised observed flux o, inverse variance w and validity v on the model grid, and
predicted normalised flux p and log10 scale t (observed: t*),

    chi2_n = sum_j v_j w'_j (p_j - o_j)^2 / max(sum_j v_j, 1),   w'_j = w_j / (1 + w_j s^2)
    loss   = mean_n chi2_n + scale_weight * mean_n (t_n - t*_n)^2

Dividing by each galaxy's number of valid pixels makes a galaxy with a short spectrum count as much as
one with a full one. ``s`` (``systematic``, in normalised flux units) is an optional noise floor added in
quadrature: with s = 0 the loss is the plain chi^2; s > 0 caps the weight of very high signal-to-noise
pixels at 1 / s^2, so a few bright galaxies do not decide the fit.
"""

from __future__ import annotations

import torch

__all__ = ["spectrum_chi2_loss"]


def spectrum_chi2_loss(predicted: torch.Tensor, log10_scale: torch.Tensor, flux: torch.Tensor, ivar: torch.Tensor,
                       valid: torch.Tensor, true_log10_scale: torch.Tensor, scale_weight: float = 1.0,
                       systematic: float = 0.0) -> torch.Tensor:
    """The loss above, a scalar tensor.

    Parameters
    ----------
    predicted, flux, ivar, valid
        (N, L) predicted and observed normalised flux, observed ivar (>= 0), validity (bool or 0/1).
    log10_scale, true_log10_scale
        (N,) predicted and observed log10 of the normalisation scale.
    scale_weight
        weight of the scale term (>= 0).
    systematic
        noise floor s >= 0 in normalised flux units.
    """
    if predicted.shape != flux.shape or ivar.shape != flux.shape or valid.shape != flux.shape:
        raise ValueError(f"predicted {tuple(predicted.shape)}, flux {tuple(flux.shape)}, ivar {tuple(ivar.shape)} "
                         f"and valid {tuple(valid.shape)} must have one (N, L) shape")
    if log10_scale.shape != (flux.shape[0],) or true_log10_scale.shape != log10_scale.shape:
        raise ValueError(f"log10 scales must be (N,) = ({flux.shape[0]},), got {tuple(log10_scale.shape)} and "
                         f"{tuple(true_log10_scale.shape)}")
    if scale_weight < 0 or systematic < 0:
        raise ValueError(f"scale_weight and systematic must be >= 0, got {scale_weight}, {systematic}")
    v = valid.to(predicted.dtype)
    w = ivar / (1.0 + ivar * systematic ** 2)
    chi2 = (v * w * (predicted - flux) ** 2).sum(-1) / v.sum(-1).clamp_min(1.0)
    return chi2.mean() + scale_weight * ((log10_scale - true_log10_scale) ** 2).mean()
