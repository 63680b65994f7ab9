"""Spectrum augmentations for contrastive learning: views of the same galaxy that differ in noise,
flux calibration and missing pixels, never in wavelength.

What a survey would plausibly give for the same object on another night, and nothing else:

- **Noise to a target S/N.** A target median S/N per pixel is drawn log-uniformly in ``snr_range``;
  a spectrum already noisier than that is left alone. Otherwise every pixel's sigma is scaled by the
  same k = S/N_now / S/N_target > 1 by *adding* only the missing variance, (k^2 - 1) / ivar, as
  Gaussian noise, and ivar becomes ivar / k^2, so the ivar stays an honest description of the noise
  (S/N_now = median over valid pixels of |flux| sqrt(ivar)).
- **Flux-calibration tilt.** Flux times ``1 + sum_k a_k x^k``, x = (lambda - lambda_mid) / range in
  [-1/2, 1/2], a_k uniform in +-``tilt_max`` for k = 1..``tilt_order``: the slow multiplicative
  errors of spectrophotometric calibration. ivar is divided by the factor squared (the noise scales
  with the flux), so S/N is unchanged. Narrow lines keep their position.
- **Masked regions.** A random number of wavelength windows (``mask_width`` Angstrom wide) become
  missing data: mask False, ivar 0, flux 0 (like bad columns, sky-line residues, dichroic gaps).

There is deliberately no wavelength shift or stretch: redshift is what the embedding should encode,
so two views that differ in redshift would teach the model to ignore it.

All draws come from ``generator``, batched in torch on the spectra's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from astroembed.config import Config

__all__ = ["SpectrumAugmentConfig", "augment_spectra", "median_snr"]


@dataclass
class SpectrumAugmentConfig(Config):
    """Strength of each augmentation. Plain data: ``to_dict``/``from_dict`` via JSON.

    Attributes
    ----------
    snr_range
        (low, high) target median S/N per pixel, drawn log-uniformly.
    p_noise
        probability that a spectrum gets the noise augmentation.
    tilt_max
        largest |a_k| of the calibration polynomial (< 1, which keeps the factor positive).
    tilt_order
        polynomial order of the tilt (1 = linear).
    p_tilt
        probability of a tilt.
    n_regions
        (min, max) number of masked windows, drawn uniformly (inclusive).
    region_width
        (min, max) width of each window in Angstrom, drawn uniformly.
    p_regions
        probability that a spectrum gets masked windows at all.
    """

    snr_range: tuple[float, float] = (3.0, 30.0)
    p_noise: float = 0.8
    tilt_max: float = 0.1
    tilt_order: int = 1
    p_tilt: float = 0.8
    n_regions: tuple[int, int] = (1, 3)
    region_width: tuple[float, float] = (50.0, 300.0)
    p_regions: float = 0.5

    def __post_init__(self) -> None:
        self.snr_range = tuple(float(v) for v in self.snr_range)  # type: ignore[assignment]
        self.n_regions = tuple(int(v) for v in self.n_regions)  # type: ignore[assignment]
        self.region_width = tuple(float(v) for v in self.region_width)  # type: ignore[assignment]
        lo, hi = self.snr_range
        if not 0 < lo <= hi:
            raise ValueError(f"snr_range must be 0 < low <= high, got {self.snr_range}")
        if not 0 <= self.tilt_max < 1:
            raise ValueError(f"tilt_max must be in [0, 1), got {self.tilt_max}")
        if self.tilt_order < 1:
            raise ValueError(f"tilt_order must be >= 1, got {self.tilt_order}")
        if not 0 <= self.n_regions[0] <= self.n_regions[1]:
            raise ValueError(f"n_regions must be 0 <= min <= max, got {self.n_regions}")
        if not 0 < self.region_width[0] <= self.region_width[1]:
            raise ValueError(f"region_width must be 0 < min <= max, got {self.region_width}")
        for name in ("p_noise", "p_tilt", "p_regions"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")


def median_snr(flux: torch.Tensor, ivar: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Median over valid pixels (mask True, ivar > 0) of |flux| sqrt(ivar), per row; 0 for empty rows."""
    valid = ivar > 0 if mask is None else mask & (ivar > 0)
    snr = flux.abs() * ivar.clamp_min(0).sqrt()
    nan = torch.full((), float("nan"), dtype=snr.dtype, device=snr.device)
    return torch.nan_to_num(torch.nanmedian(torch.where(valid, snr, nan), dim=-1).values, nan=0.0)


def _rand(shape, generator, device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float64).to(device)


def augment_spectra(flux: torch.Tensor, ivar: torch.Tensor, mask: torch.Tensor | None, wavelength: torch.Tensor,
                    config: SpectrumAugmentConfig | None = None, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random view of each spectrum: calibration tilt, then noise to a target S/N, then masked windows.

    Parameters
    ----------
    flux, ivar
        (N, n) float tensors (numpy is converted). Pixels with mask False or ivar 0 are
        left as they are by tilt and noise.
    mask
        (N, n) bool, True = good; ``None`` = ivar > 0.
    wavelength
        (n,) or (N, n) Angstrom; only read, never changed.
    config
        augmentation strengths; default ``SpectrumAugmentConfig()``.
    generator
        torch generator for reproducible views (CPU or on the spectra's device).

    Returns
    -------
    New ``(flux, ivar, mask)`` tensors of the input dtypes; the inputs are not modified.
    """
    config = config or SpectrumAugmentConfig()
    flux = torch.as_tensor(flux)
    dev = flux.device
    ivar = torch.as_tensor(ivar, device=dev)
    if flux.ndim != 2 or ivar.shape != flux.shape:
        raise ValueError(f"flux and ivar must be (N, n_pix) tensors of one shape, got {tuple(flux.shape)} "
                         f"and {tuple(ivar.shape)}")
    mask = (ivar > 0) if mask is None else torch.as_tensor(mask, device=dev).bool()
    if mask.shape != flux.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match flux shape {tuple(flux.shape)}")
    lam = torch.as_tensor(np.asarray(wavelength) if not isinstance(wavelength, torch.Tensor) else wavelength,
                          device=dev).to(torch.float64)
    lam = lam.reshape(-1, lam.shape[-1]).expand(flux.shape[0], -1)
    if lam.shape != flux.shape:
        raise ValueError(f"wavelength shape {tuple(lam.shape)} does not fit flux shape {tuple(flux.shape)}")
    n = flux.shape[0]
    f, w = flux.to(torch.float64), ivar.to(torch.float64)
    good = mask & (w > 0)

    # Calibration tilt: factor in (0, 2) because tilt_max < 1 and |x| <= 1/2.
    lo, hi = lam.min(-1, keepdim=True).values, lam.max(-1, keepdim=True).values
    x = (lam - 0.5 * (lo + hi)) / (hi - lo)
    coef = (2 * _rand((n, config.tilt_order), generator, dev) - 1) * config.tilt_max
    coef = coef * (_rand((n, 1), generator, dev) < config.p_tilt)
    powers = torch.arange(1, config.tilt_order + 1, device=dev, dtype=torch.float64)
    factor = 1 + (coef[:, None, :] * x[..., None] ** powers).sum(-1)
    f, w = torch.where(good, f * factor, f), torch.where(good, w / factor**2, w)

    # Noise to a target S/N: only the variance that is missing is added.
    log_lo, log_hi = np.log(config.snr_range[0]), np.log(config.snr_range[1])
    target = torch.exp(log_lo + (log_hi - log_lo) * _rand((n,), generator, dev))
    apply = _rand((n,), generator, dev) < config.p_noise
    now = median_snr(f, w, good)
    k = torch.where(apply & (now > target), now / target, torch.ones_like(now))[:, None]
    gen_device = generator.device if generator is not None else torch.device("cpu")
    z = torch.randn(f.shape, generator=generator, device=gen_device, dtype=torch.float64).to(dev)
    extra_sigma = torch.where(good, ((k**2 - 1) / w.clamp_min(torch.finfo(w.dtype).tiny)).sqrt(),
                              torch.zeros_like(w))
    f = f + extra_sigma * z
    w = torch.where(good, w / k**2, w)

    # Masked windows in wavelength.
    r_max = config.n_regions[1]
    if r_max > 0:
        count = config.n_regions[0] + (_rand((n,), generator, dev) * (r_max - config.n_regions[0] + 1)).long()
        count = torch.where(_rand((n,), generator, dev) < config.p_regions, count, torch.zeros_like(count))
        active = torch.arange(r_max, device=dev) < count[:, None]  # (N, R)
        centre = lo + (hi - lo) * _rand((n, r_max), generator, dev)
        w_lo, w_hi = config.region_width
        half = 0.5 * (w_lo + (w_hi - w_lo) * _rand((n, r_max), generator, dev))
        inside = ((lam[:, None, :] - centre[..., None]).abs() <= half[..., None]) & active[..., None]
        cut = inside.any(1)
        good = good & ~cut
        mask = mask & ~cut
        f = torch.where(cut, torch.zeros_like(f), f)
        w = torch.where(cut, torch.zeros_like(w), w)

    return f.to(flux.dtype), w.to(ivar.dtype), mask.clone()
