"""Measured fluxes beside learned features: aperture photometry of a cutout, binned fluxes of a spectrum.

An encoder's features are what a few minutes of self-supervision taught it to keep, and two things it keeps
poorly are exactly what ties a galaxy's image to its spectrum: its integrated colours and brightness.
- The image encoder sees arcsinh-stretched pixels, and its pretraining views redden, rescale and add noise
  so that it learns to ignore them (Hayat et al. 2021).
- The spectrum encoder sees each spectrum divided by its own scale.
On the built-in survey, the spectrum is the galaxy's total flux, so the colours of the cutout and the
spectrum agree to 0.005 (ln flux ratio, BENCHMARKS.md): matching the g, r and z colours of a 64-pixel
aperture to 32 binned fluxes of the spectrum finds the right partner among 600 in the top 1 % 95 % of the
time, where the learned features of the main job reach 0.45.

These wrappers append those measurements to an encoder's features, computed exactly from the encoder's own
input, so the aligned model's interfaces do not change. They are computed and returned in float32 under any
autocast: a colour measured to 0.005 does not survive bfloat16's 8-bit mantissa (0.4 %).

- :class:`ImageWithApertureFluxes`: the stretch is inverted (flux = sinh(sqrt(q) x) / (q s_b)) and the
  flux summed inside circles of ``radii`` pixels about the cutout's centre, per band; each sum is
  stretched back the same way, arcsinh(q s_b F) / sqrt(q) (a log flux, softened at the pixel noise).
  With ``colours``, the differences of adjacent bands follow (per radius: g - r, r - z, ...).
- :class:`SpectrumWithBinnedFluxes`: the normalised flux is scaled back (times 10^log10_scale) and
  averaged, inverse-variance weighted, over ``n_bins`` equal wavelength ranges of the model grid; each
  mean becomes arcsinh(mean / softening), softening in the flux unit (1e-17 erg/s/cm^2/A). With
  ``colours``, the differences of adjacent bins follow.

Why the colours are given explicitly although they are differences of the fluxes: the heads standardise each
feature over the galaxies, and a band's log flux varies mostly with brightness, so a colour is a small
difference of two large standardised numbers. Given as features of their own they added 0.03-0.05 of
held-out top-1 % recall on the main job (BENCHMARKS.md). Exports made before ``colours`` existed load
without them.

They are written here because nothing in the dependencies measures fluxes on torch tensors in a forward
pass (photutils works on one numpy image at a time, and is not a dependency). The pixels inside a circle are
those whose centres lie within it (no sub-pixel overlap): the same pixels for every galaxy of a frame size,
which is what a comparison between galaxies needs. An aligned model trained with them keeps them
(``measured_fluxes`` in :class:`~astroembed.train.clip_frozen.FrozenAlignConfig`); on real fibre spectra,
whose flux is the light inside a fibre, the small apertures are the matching measurement.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from astroembed.models.io import build_from_config
from astroembed.models.registry import MODEL_TYPES

__all__ = ["ImageWithApertureFluxes", "SpectrumWithBinnedFluxes", "aperture_weights", "binned_means"]

DEFAULT_RADII = (4.0, 8.0, 16.0, 32.0)  # pixels of the model's input; 32 fills the main job's 64-pixel crop
DEFAULT_BINS = 32
DEFAULT_SPECTRUM_SOFTENING = 0.1  # 1e-17 erg/s/cm^2/A: well below a survey galaxy's continuum


def aperture_weights(height: int, width: int, radii: Sequence[float], device=None) -> torch.Tensor:
    """(len(radii), height * width) 0/1 weights: the pixels whose centres lie within each radius of the
    frame's centre ((height - 1) / 2, (width - 1) / 2)."""
    y = torch.arange(height, dtype=torch.float32, device=device) - (height - 1) / 2
    x = torch.arange(width, dtype=torch.float32, device=device) - (width - 1) / 2
    r = torch.sqrt(y[:, None] ** 2 + x[None, :] ** 2).reshape(-1)
    return (r[None, :] < torch.tensor([float(v) for v in radii], device=device)[:, None]).float()


def binned_means(flux: torch.Tensor, weight: torch.Tensor, n_pixels: int, n_bins: int) -> torch.Tensor:
    """(N, n) values and weights -> (N, n_bins) weighted means over ``n_bins`` equal ranges of the first
    ``n_pixels`` columns (0 where a range has no weight)."""
    edges = torch.linspace(0, n_pixels, n_bins + 1, device=flux.device).round().long()
    index = torch.bucketize(torch.arange(n_pixels, device=flux.device), edges[1:-1], right=True)
    f, w = flux[:, :n_pixels].float(), weight[:, :n_pixels].float()
    total = torch.zeros(flux.shape[0], n_bins, device=flux.device, dtype=torch.float32)
    weights = total.index_add(1, index, w)
    sums = total.index_add(1, index, f * w)
    return torch.where(weights > 0, sums / weights.clamp_min(1e-30), torch.zeros_like(sums))


class ImageWithApertureFluxes(nn.Module):
    """``encoder(x)`` followed by the arcsinh aperture fluxes of ``x``, (N, embed_dim + bands * radii).

    ``x`` is the arcsinh-stretched cutout the encoder takes (``preprocess`` with ``band_scales`` s_b, in
    the model's band order, and ``softening`` q); features are ordered band-major (g at every radius, then r...).
    """

    def __init__(self, encoder: nn.Module, band_scales: Sequence[float], softening: float,
                 radii: Sequence[float] = DEFAULT_RADII, encoder_config: Mapping[str, Any] | None = None,
                 colours: bool = True):
        super().__init__()
        scales = [float(s) for s in band_scales]
        if not scales or not all(math.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"band_scales must be positive numbers, one per band, got {band_scales!r}")
        if not (math.isfinite(softening) and softening > 0):
            raise ValueError(f"softening must be positive, got {softening!r}")
        if not radii or not all(math.isfinite(float(r)) and float(r) > 0 for r in radii):
            raise ValueError(f"radii must be positive pixel radii, got {radii!r}")
        self.encoder = encoder
        self.radii = tuple(float(r) for r in radii)
        self.softening = float(softening)
        self.band_scales = tuple(scales)
        self.encoder_config = dict(encoder_config or {})
        self.colours = bool(colours)
        self.n_measured = (2 * len(scales) - 1 if self.colours else len(scales)) * len(self.radii)
        self.embed_dim = int(encoder.embed_dim) + self.n_measured

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """(N, B, H, W) stretched cutouts -> (N, n_measured): the B * len(radii) stretched aperture fluxes, then
        (with ``colours``) the (B - 1) * len(radii) differences of adjacent bands."""
        n, b, h, w = x.shape
        if b != len(self.band_scales):
            raise ValueError(f"the aperture fluxes were set up for {len(self.band_scales)} bands, got {b}")
        q = self.softening
        scale = q * torch.tensor(self.band_scales, dtype=torch.float32, device=x.device).view(1, b, 1)
        flux = torch.sinh(x.float().reshape(n, b, h * w) * math.sqrt(q)) / scale
        inside = aperture_weights(h, w, self.radii, x.device)
        sums = torch.einsum("nbp,rp->nbr", flux, inside)
        fluxes = torch.asinh(sums * scale) / math.sqrt(q)  # (N, B, radii)
        if not self.colours:
            return fluxes.reshape(n, -1)
        return torch.cat([fluxes.reshape(n, -1), (fluxes[:, :-1] - fluxes[:, 1:]).reshape(n, -1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        with torch.autocast(x.device.type, enabled=False):
            return torch.cat([features.float(), self.measure(x)], dim=1)

    def model_config(self) -> dict[str, Any]:
        return {"encoder": self.encoder_config, "band_scales": list(self.band_scales), "softening": self.softening,
                "radii": list(self.radii), "colours": self.colours}


class SpectrumWithBinnedFluxes(nn.Module):
    """``encoder(batch)`` followed by the arcsinh binned fluxes of the spectrum, (N, embed_dim + n_bins).

    ``batch`` is a ``prepare_batch`` dict (normalised ``flux``, ``ivar``, ``valid`` on the padded model grid,
    ``log10_scale``); ``n_pixels`` is the model grid's length before padding.
    """

    def __init__(self, encoder: nn.Module, n_pixels: int, n_bins: int = DEFAULT_BINS,
                 softening: float = DEFAULT_SPECTRUM_SOFTENING, encoder_config: Mapping[str, Any] | None = None,
                 colours: bool = True):
        super().__init__()
        if not 1 <= int(n_bins) <= int(n_pixels):
            raise ValueError(f"n_bins must be between 1 and the grid's {n_pixels} pixels, got {n_bins}")
        if not (math.isfinite(softening) and softening > 0):
            raise ValueError(f"softening must be positive, got {softening!r}")
        self.encoder = encoder
        self.n_pixels, self.n_bins, self.softening = int(n_pixels), int(n_bins), float(softening)
        self.encoder_config = dict(encoder_config or {})
        self.colours = bool(colours)
        self.n_measured = 2 * self.n_bins - 1 if self.colours else self.n_bins
        self.embed_dim = int(encoder.embed_dim) + self.n_measured

    def measure(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """A ``prepare_batch`` dict -> (N, n_measured): the n_bins stretched binned fluxes, then (with
        ``colours``) the n_bins - 1 differences of adjacent bins."""
        missing = [k for k in ("flux", "ivar", "valid", "log10_scale") if k not in batch]
        if missing:
            raise ValueError(f"binned fluxes need a prepare_batch dict; this one lacks {missing}")
        weight = batch["ivar"].float() * batch["valid"].float()
        means = binned_means(batch["flux"], weight, self.n_pixels, self.n_bins)
        scale = torch.pow(10.0, batch["log10_scale"].float()).reshape(-1, 1)
        fluxes = torch.asinh(means * scale / self.softening)
        if not self.colours:
            return fluxes
        return torch.cat([fluxes, fluxes[:, :-1] - fluxes[:, 1:]], dim=1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        features = self.encoder(batch)
        with torch.autocast(batch["flux"].device.type, enabled=False):
            return torch.cat([features.float(), self.measure(batch)], dim=1)

    def model_config(self) -> dict[str, Any]:
        return {"encoder": self.encoder_config, "n_pixels": self.n_pixels, "n_bins": self.n_bins,
                "softening": self.softening, "colours": self.colours}


def _build_image(config: Mapping[str, Any]) -> ImageWithApertureFluxes:
    return ImageWithApertureFluxes(build_from_config(config["encoder"]), config["band_scales"], config["softening"],
                                   config["radii"], encoder_config=config["encoder"],
                                   colours=bool(config.get("colours", False)))


def _build_spectrum(config: Mapping[str, Any]) -> SpectrumWithBinnedFluxes:
    return SpectrumWithBinnedFluxes(build_from_config(config["encoder"]), config["n_pixels"], config["n_bins"],
                                    config["softening"], encoder_config=config["encoder"],
                                    colours=bool(config.get("colours", False)))


MODEL_TYPES.register("image_with_aperture_fluxes", _build_image)
MODEL_TYPES.register("spectrum_with_binned_fluxes", _build_spectrum)
