"""Photometry augmentations: views of one galaxy's catalogue fluxes that a survey could have measured.

- **Noise redrawn from the ivar.** Each valid band gets extra Gaussian noise of standard deviation
  k sigma_b (sigma_b = ivar_b^-1/2, k uniform in ``noise_scale``), and ivar becomes ivar / (1 + k^2),
  so the ivar stays an honest description of the view's noise. What a second, shallower exposure of
  the same galaxy would give.
- **Galactic reddening.** Every band's flux times 10^(-0.4 R_b dE) with one dE(B-V) per galaxy,
  uniform in ``ebv_range`` (negative = de-reddening), with the same R_b table as the image
  augmentations (:mod:`astroembed.augment.extinction` through :func:`~astroembed.augment.ops.reddening_factor`),
  so images and photometry of one galaxy are reddened by the same physics. ivar is divided by the
  factor squared (S/N unchanged). Bands the table lacks (e.g. WISE) are an error unless ``reddening``
  is off.
- **Band dropout.** Each valid band is masked (ivar 0) with probability ``p_drop``, always keeping at
  least ``min_bands``: the encoder learns to embed any subset of its bands, as real catalogues have.

All draws come from ``generator``, batched in torch on the fluxes' device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from astroembed.augment.ops import reddening_factor
from astroembed.config import Config

__all__ = ["PhotometryAugmentConfig", "augment_photometry"]


@dataclass
class PhotometryAugmentConfig(Config):
    """Strength of each photometry augmentation (see the module docstring)."""

    noise_scale: tuple[float, float] = (0.0, 1.0)
    reddening: bool = True
    ebv_range: tuple[float, float] = (-0.05, 0.1)
    filter_system: str = "sdss"      # how plain band names are looked up in the R_b table
    p_drop: float = 0.15
    min_bands: int = 2

    def __post_init__(self):
        self.noise_scale = tuple(float(v) for v in self.noise_scale)  # type: ignore[assignment]
        self.ebv_range = tuple(float(v) for v in self.ebv_range)  # type: ignore[assignment]
        for name in ("noise_scale", "ebv_range"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(low, high)}")
        if self.noise_scale[0] < 0:
            raise ValueError(f"noise_scale must be >= 0, got {self.noise_scale}")
        if not 0 <= self.p_drop < 1:
            raise ValueError(f"p_drop must be in [0, 1), got {self.p_drop}")
        if isinstance(self.min_bands, bool) or not isinstance(self.min_bands, int) or self.min_bands < 1:
            raise ValueError(f"min_bands must be a positive int, got {self.min_bands!r}")


def _uniform(low: float, high: float, n: int, like: torch.Tensor, generator) -> torch.Tensor:
    u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return low + (high - low) * u


def augment_photometry(flux: torch.Tensor, ivar: torch.Tensor, bands: Sequence[str], config: PhotometryAugmentConfig,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmented view of (N, P) fluxes and ivars in ``bands``; returns new (flux, ivar).

    Invalid bands (ivar 0 or non-finite values) stay invalid and are never chosen as kept bands.
    """
    flux, ivar = flux.float(), ivar.float()
    valid = torch.isfinite(flux) & torch.isfinite(ivar) & (ivar > 0)
    flux = torch.where(valid, flux, torch.zeros_like(flux))
    ivar = torch.where(valid, ivar, torch.zeros_like(ivar))
    n, p = flux.shape

    k = _uniform(*config.noise_scale, n, flux, generator)[:, None]
    sigma = torch.where(valid, ivar.clamp(min=1e-30).rsqrt(), torch.zeros_like(ivar))
    noise = torch.randn(flux.shape, generator=generator, device=flux.device, dtype=flux.dtype)
    flux = flux + k * sigma * noise
    ivar = ivar / (1 + k ** 2)

    if config.reddening:
        factor = reddening_factor(bands, _uniform(*config.ebv_range, n, flux, generator), config.filter_system)
        flux = flux * factor
        ivar = ivar / factor ** 2

    if config.p_drop > 0:
        # Drop a band where its uniform draw is below p_drop, but never one of the min_bands valid bands
        # with the highest draws: those are kept whatever p_drop is.
        u = torch.rand(flux.shape, generator=generator, device=flux.device, dtype=flux.dtype)
        u = torch.where(valid, u, torch.full_like(u, -1.0))
        rank = u.argsort(dim=1, descending=True).argsort(dim=1)  # 0 = highest draw
        drop = valid & (u < config.p_drop) & (rank >= config.min_bands)
        ivar = torch.where(drop, torch.zeros_like(ivar), ivar)
        flux = torch.where(drop, torch.zeros_like(flux), flux)
    return flux, ivar
