"""Catalogue photometry -> photometry-encoder input: arcsinh magnitudes per band, in the model's bands.

One code path (:func:`photometry_features`) serves training, augmentation and embedding, so a saved
model always sees photometry prepared as it was trained on (the config is saved beside it).

1. **Bands by name.** The input's bands are matched to the model's ``bands`` by name (exact, so SDSS
   ``g`` and DECam ``g`` are the same name: a model trained on one survey's filters reads another's at
   the user's risk). A model band the input lacks, or one whose flux is NaN/inf or whose ivar is 0, is
   a **masked** input: the encoder never sees a value for it (not a zero that could be a real flux).
   Input bands the model does not know are left out.

2. **Arcsinh magnitudes** (Lupton, Gunn & Szalay 1999, AJ 118, 1406), which stay finite and smooth
   through zero and negative fluxes, where log magnitudes blow up:

       m = zero_point - (2.5 / ln 10) * [asinh(f / (2 b)) + ln b]

   with f and the softening b in the survey's flux unit (``zero_point`` 22.5 for nanomaggies: then
   m -> 22.5 - 2.5 log10 f, the AB magnitude, for f >> b). The error of m is
   sigma_m = (2.5 / ln 10) * sigma_f / sqrt(f^2 + 4 b^2).
   **Softening b per band**: 1.042 x the median flux error sigma_f of that band over the training
   galaxies (Lupton et al. 1999, eq. 7: b = 1.042 sigma minimises the variance of m at the faint end,
   where SNR ~ 1). It is derived from the data by :func:`fit_photometry_preprocess` and saved with the
   model, so any band set and any flux unit works (SDSS's own catalogue values, 1.4/0.9/1.2/1.8/7.4
   x 1e-10 maggies in ugriz, are the same rule applied to SDSS's typical errors).

3. **Standardise** each band's m by the training median and 1.4826 x MAD (``center``, ``scale``).

Each band is then one token of two numbers: the standardised m and log10 of its error sigma_m
(the encoder learns how far to trust each band). Output: ``{"values": (N, P, 2), "mask": (N, P)}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from astroembed.config import Config
from astroembed.data.records import InvalidDataError

__all__ = ["PhotometryPreprocessConfig", "arcsinh_magnitude", "band_columns", "fit_photometry_preprocess",
           "photometry_features", "prepare_photometry"]

LUPTON_B_PER_SIGMA = 1.042  # Lupton et al. 1999, eq. 7
POGSON = 2.5 / math.log(10.0)
MIN_MAG_ERROR = 1e-3  # floor of sigma_m before the log: a catalogue error of 0 is not infinite precision


@dataclass
class PhotometryPreprocessConfig(Config):
    """How a model's photometry was prepared: its bands, flux unit and per-band constants (saved with it)."""

    bands: tuple[str, ...] = ("u", "g", "r", "i", "z")
    unit: str = "nanomaggies"      # the survey's flux unit (informative; zero_point must match it)
    zero_point: float = 22.5       # m = zero_point - 2.5 log10(f) for bright sources (22.5: nanomaggies)
    softening: tuple[float, ...] = ()  # b per band, in the flux unit (() until fitted)
    center: tuple[float, ...] = ()     # median arcsinh magnitude per band over the training set
    scale: tuple[float, ...] = ()      # 1.4826 x MAD of it

    def __post_init__(self):
        self.bands = tuple(str(b) for b in self.bands)
        if not self.bands or len(set(self.bands)) != len(self.bands):
            raise ValueError(f"bands must be distinct names, at least one, got {list(self.bands)}")
        for name in ("softening", "center", "scale"):
            values = tuple(float(v) for v in getattr(self, name))
            setattr(self, name, values)
            if values and len(values) != len(self.bands):
                raise ValueError(f"{name} has {len(values)} values for {len(self.bands)} bands")
        if any(not b > 0 for b in self.softening) or any(not s > 0 for s in self.scale):
            raise ValueError("softening and scale must be > 0")

    @property
    def fitted(self) -> bool:
        return bool(self.softening) and bool(self.center) and bool(self.scale)


def arcsinh_magnitude(flux, softening, zero_point: float = 22.5):
    """Lupton et al. (1999) arcsinh magnitude of ``flux`` with softening ``softening`` (same unit).

    Works on numpy arrays and torch tensors (broadcasting ``softening`` over the last axis).

    >>> round(float(arcsinh_magnitude(np.array(100.0), 0.1)), 4)  # ~ 22.5 - 2.5 log10(100) = 17.5
    17.5
    """
    if isinstance(flux, torch.Tensor):
        lib, b = torch, torch.as_tensor(softening, dtype=flux.dtype, device=flux.device)
    else:
        lib, b = np, np.asarray(softening, dtype=np.float64)
    return zero_point - POGSON * (lib.arcsinh(flux / (2 * b)) + lib.log(b))


def band_columns(data_bands: Sequence[str], model_bands: Sequence[str], source=None, object_id=None) -> np.ndarray:
    """For each model band, the input column holding it (-1: the input lacks it, so it is masked).

    Raises InvalidDataError (field ``photometry_band``) for repeated input band names and for inputs
    that share no band with the model (nothing to embed).
    """
    data_bands = [str(b) for b in data_bands]
    where = {"source": source, "object_id": object_id, "field": "photometry_band"}
    repeated = sorted({b for b in data_bands if data_bands.count(b) > 1})
    if repeated:
        raise InvalidDataError(f"band name(s) {repeated} appear more than once in {data_bands}", **where)
    index = {b: i for i, b in enumerate(data_bands)}
    columns = np.array([index.get(b, -1) for b in model_bands], dtype=np.int64)
    if (columns < 0).all():
        raise InvalidDataError(f"none of the bands {data_bands} is one of the model's {list(model_bands)} "
                               "(names are matched exactly)", **where)
    return columns


def photometry_features(flux: torch.Tensor, ivar: torch.Tensor, config: PhotometryPreprocessConfig
                        ) -> dict[str, torch.Tensor]:
    """(N, P) flux and ivar already in the model's band order -> ``{"values": (N, P, 2), "mask": (N, P)}``.

    A band is valid where flux and ivar are finite and ivar > 0; invalid bands get values 0 and mask
    False (the encoder ignores them). ``config`` must be fitted.
    """
    if not config.fitted:
        raise ValueError("the photometry preprocessing is not fitted (softening, center, scale are empty)")
    flux, ivar = flux.float(), ivar.float()
    mask = torch.isfinite(flux) & torch.isfinite(ivar) & (ivar > 0)
    f = torch.where(mask, flux, torch.zeros_like(flux))
    sigma = torch.where(mask, ivar, torch.ones_like(ivar)).rsqrt()
    b = torch.as_tensor(config.softening, dtype=f.dtype, device=f.device)
    m = arcsinh_magnitude(f, b, config.zero_point)
    m = (m - torch.as_tensor(config.center, dtype=f.dtype, device=f.device)) \
        / torch.as_tensor(config.scale, dtype=f.dtype, device=f.device)
    sigma_m = POGSON * sigma / torch.sqrt(f ** 2 + 4 * b ** 2)
    log_err = torch.log10(sigma_m.clamp(min=MIN_MAG_ERROR))
    values = torch.stack([m, log_err], dim=-1) * mask[..., None]
    return {"values": values, "mask": mask}


def prepare_photometry(flux, ivar, bands: Sequence[str] | None, config: PhotometryPreprocessConfig,
                       device=None) -> dict[str, torch.Tensor]:
    """(N, K) fluxes and ivars in the input's ``bands`` (``None``: the model's, in order) -> encoder input."""
    flux = torch.as_tensor(np.asarray(flux, dtype=np.float32), device=device)
    ivar = torch.as_tensor(np.asarray(ivar, dtype=np.float32), device=device)
    if bands is not None:
        columns = torch.as_tensor(band_columns(bands, config.bands), device=flux.device)
        take = columns.clamp(min=0)
        present = (columns >= 0)[None]
        flux = torch.where(present, flux[:, take], torch.zeros((), device=flux.device))
        ivar = torch.where(present, ivar[:, take], torch.zeros((), device=flux.device))
    return photometry_features(flux, ivar, config)


def fit_photometry_preprocess(flux: np.ndarray, ivar: np.ndarray, bands: Sequence[str], unit: str = "nanomaggies",
                              zero_point: float = 22.5) -> PhotometryPreprocessConfig:
    """Softening, center and scale per band from training photometry (N, P) in ``bands``' order.

    A band with no valid value in the training set cannot be used and is an error naming it.
    """
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    if flux.ndim != 2 or flux.shape != ivar.shape or flux.shape[1] != len(bands):
        raise ValueError(f"expected (N, {len(bands)}) flux and ivar, got {flux.shape} and {ivar.shape}")
    valid = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    softening, center, scale = [], [], []
    for j, band in enumerate(bands):
        good = valid[:, j]
        if good.sum() < 2:
            raise InvalidDataError(f"band {band!r} has {int(good.sum())} valid flux(es) in the training set; "
                                   "at least 2 are needed to set its softening and scale", field="photometry_flux")
        b = LUPTON_B_PER_SIGMA * float(np.median(ivar[good, j] ** -0.5))
        m = arcsinh_magnitude(flux[good, j], b, zero_point)
        med = float(np.median(m))
        mad = 1.4826 * float(np.median(np.abs(m - med)))
        softening.append(b)
        center.append(med)
        scale.append(max(mad, 1e-3))
    return PhotometryPreprocessConfig(bands=tuple(bands), unit=unit, zero_point=zero_point,
                                      softening=tuple(softening), center=tuple(center), scale=tuple(scale))
