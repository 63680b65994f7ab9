"""The galaxy record: one object on the sky with any of an image, a spectrum, photometry and labels.

Every reader produces these records and every writer consumes them, so validation happens once, here,
at the boundary. Arrays are numpy (float32 for measurements); nothing in this module imports torch.

Validation policy (documented masking vs. error):
- Non-finite flux or ivar values (NaN, +-inf) are *masked*: flux -> 0, ivar -> 0, mask -> False. The
  number masked is returned by :meth:`Galaxy.validate` so readers can count and report them.
- ivar < 0 is an error: a negative variance is a broken file, not a missing pixel. ivar == 0 is a
  legitimate "no information" value and is masked (mask -> False).
- Wrong shapes, empty arrays, band names that do not match the array, non-monotonic or non-positive
  wavelengths, non-finite coordinates are errors.
Every error is an :class:`InvalidDataError` whose message names the source file, the object id and
the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .errors import InvalidDataError

__all__ = [
    "InvalidDataError",
    "Image",
    "Spectrum",
    "Photometry",
    "Galaxy",
    "check_unique_ids",
    "mask_bad_values",
]


def _where(source, object_id):
    return {"source": source, "object_id": object_id}


def _as_float_array(value, name, ndim, ctx) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"cannot be read as numbers ({exc})", field=name, **ctx) from None
    if arr.ndim != ndim:
        raise InvalidDataError(f"expected {ndim} dimensions, got shape {arr.shape}", field=name, **ctx)
    if arr.size == 0:
        raise InvalidDataError(f"is empty (shape {arr.shape})", field=name, **ctx)
    return arr


def _check_same_shape(arr, ref, name, ref_name, ctx):
    if arr.shape != ref.shape:
        raise InvalidDataError(f"shape {arr.shape} does not match {ref_name} shape {ref.shape}",
                               field=name, **ctx)


def mask_bad_values(flux, ivar, mask, prefix, ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Apply the documented masking; return the cleaned arrays and how many values were masked.

    NaN or inf flux or ivar -> flux 0, ivar 0, mask False; ivar = 0 -> mask False; negative ivar is an
    ``InvalidDataError`` (``ctx`` gives its source and object_id; ``prefix`` the modality). Shared by
    every reader of stored arrays (records, ``MMUDataset``, the embedding runner).
    """
    if np.isfinite(flux).all() and np.isfinite(ivar).all() and not (ivar < 0).any():
        return flux, ivar, mask & (ivar > 0), 0  # the common clean case, without boolean-index copies
    finite_ivar = np.isfinite(ivar)
    if np.any(ivar[finite_ivar] < 0):
        n = int(np.sum(ivar[finite_ivar] < 0))
        raise InvalidDataError(f"{n} negative inverse-variance values", field=f"{prefix}_ivar", **ctx)
    bad = ~np.isfinite(flux) | ~finite_ivar
    n_bad = int(bad.sum())
    mask = mask & ~bad & (ivar > 0)
    if n_bad:
        flux = np.where(bad, 0.0, flux).astype(np.float32)
        ivar = np.where(bad, 0.0, ivar).astype(np.float32)
    return flux, ivar, mask, n_bad


@dataclass
class Image:
    """A multi-band cutout.

    flux: (bands, H, W) float32, in the survey's flux unit (nanomaggies for Legacy Surveys; for uint8
    RGB cutouts, the 0-255 values as float with bands ("R", "G", "B")).
    ivar: inverse variance of flux, same shape; ``None`` means unknown (stored as ones-free: see
    :attr:`has_ivar`). mask: True = good pixel. psf_fwhm: (bands,) arcsec, NaN where unknown.
    pixel_scale: arcsec per pixel.
    """

    flux: np.ndarray
    bands: tuple[str, ...]
    ivar: np.ndarray | None = None
    mask: np.ndarray | None = None
    psf_fwhm: np.ndarray | None = None
    pixel_scale: float = float("nan")

    @property
    def has_ivar(self) -> bool:
        return self.ivar is not None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.flux.shape)  # type: ignore[return-value]

    def validate(self, source=None, object_id=None) -> int:
        """Check and clean in place; return the number of masked non-finite values."""
        ctx = _where(source, object_id)
        self.flux = _as_float_array(self.flux, "image_array", 3, ctx)
        n_bands = self.flux.shape[0]
        self.bands = tuple(str(b) for b in self.bands)
        if len(self.bands) != n_bands:
            raise InvalidDataError(
                f"{len(self.bands)} band names {list(self.bands)} for an array with {n_bands} bands",
                field="image_band", **ctx)
        if len(set(self.bands)) != len(self.bands):
            raise InvalidDataError(f"duplicated band names {list(self.bands)}", field="image_band", **ctx)
        if self.ivar is None:
            ivar = np.ones_like(self.flux)
            known_ivar = False
        else:
            ivar = _as_float_array(self.ivar, "image_ivar", 3, ctx)
            _check_same_shape(ivar, self.flux, "image_ivar", "image_array", ctx)
            known_ivar = True
        if self.mask is None:
            mask = np.ones(self.flux.shape, dtype=bool)
        else:
            mask = np.asarray(self.mask).astype(bool)
            _check_same_shape(mask, self.flux, "image_mask", "image_array", ctx)
        flux, ivar, mask, n_bad = mask_bad_values(self.flux, ivar, mask, "image", ctx)
        self.flux, self.mask = flux, mask
        self.ivar = ivar if known_ivar else None
        if self.psf_fwhm is None:
            self.psf_fwhm = np.full(n_bands, np.nan, dtype=np.float32)
        else:
            psf = np.atleast_1d(np.asarray(self.psf_fwhm, dtype=np.float32))
            if psf.size == 1 and n_bands > 1:
                psf = np.repeat(psf, n_bands)
            if psf.shape != (n_bands,):
                raise InvalidDataError(f"expected one PSF FWHM per band ({n_bands}), got shape {psf.shape}",
                                       field="image_psf_fwhm", **ctx)
            if np.any(psf[np.isfinite(psf)] <= 0) or np.any(np.isinf(psf)):
                raise InvalidDataError(f"PSF FWHM must be positive arcsec, got {psf.tolist()}",
                                       field="image_psf_fwhm", **ctx)
            self.psf_fwhm = psf
        scale = float(self.pixel_scale)
        if not (np.isnan(scale) or (np.isfinite(scale) and scale > 0)):
            raise InvalidDataError(f"pixel scale must be positive arcsec/pixel, got {scale}",
                                   field="image_scale", **ctx)
        self.pixel_scale = scale
        return n_bad


@dataclass
class Spectrum:
    """A 1-D spectrum on its own wavelength grid.

    flux and ivar: (n_pix,) float32 (1e-17 erg/s/cm^2/A for SDSS and DESI). wavelength: Angstrom,
    strictly increasing, positive. mask: True = good. lsf_sigma: line-spread sigma in Angstrom, per
    pixel or a scalar (NaN where unknown).
    """

    flux: np.ndarray
    wavelength: np.ndarray
    ivar: np.ndarray | None = None
    mask: np.ndarray | None = None
    lsf_sigma: np.ndarray | None = None

    def __len__(self) -> int:
        return int(np.asarray(self.flux).shape[0])

    def validate(self, source=None, object_id=None) -> int:
        ctx = _where(source, object_id)
        self.flux = _as_float_array(self.flux, "spectrum_flux", 1, ctx)
        wave = np.asarray(self.wavelength, dtype=np.float64)
        if wave.ndim != 1 or wave.size == 0:
            raise InvalidDataError(f"expected a non-empty 1-D array, got shape {wave.shape}",
                                   field="spectrum_lambda", **ctx)
        _check_same_shape(wave, self.flux, "spectrum_lambda", "spectrum_flux", ctx)
        if not np.all(np.isfinite(wave)):
            raise InvalidDataError("non-finite wavelengths", field="spectrum_lambda", **ctx)
        if np.any(wave <= 0):
            raise InvalidDataError(f"wavelengths must be positive Angstrom, min is {wave.min():g}",
                                   field="spectrum_lambda", **ctx)
        steps = np.diff(wave)
        if np.any(steps <= 0):
            i = int(np.argmax(steps <= 0))
            raise InvalidDataError(
                f"wavelengths must be strictly increasing; pixel {i + 1} ({wave[i + 1]:g} A) follows "
                f"{wave[i]:g} A", field="spectrum_lambda", **ctx)
        # float32 is enough for any real grid; keep float64 when float32 would merge pixels or underflow.
        wave32 = wave.astype(np.float32)
        self.wavelength = wave32 if np.all(np.diff(wave32) > 0) and np.all(wave32 > 0) else wave
        if self.ivar is None:
            ivar = np.ones_like(self.flux)
        else:
            ivar = _as_float_array(self.ivar, "spectrum_ivar", 1, ctx)
            _check_same_shape(ivar, self.flux, "spectrum_ivar", "spectrum_flux", ctx)
        if self.mask is None:
            mask = np.ones(self.flux.shape, dtype=bool)
        else:
            mask = np.asarray(self.mask).astype(bool)
            _check_same_shape(mask, self.flux, "spectrum_mask", "spectrum_flux", ctx)
        self.flux, self.ivar, self.mask, n_bad = mask_bad_values(self.flux, ivar, mask, "spectrum", ctx)
        if self.lsf_sigma is None:
            self.lsf_sigma = np.full(self.flux.shape, np.nan, dtype=np.float32)
        else:
            lsf = np.asarray(self.lsf_sigma, dtype=np.float32)
            if lsf.ndim == 0:
                lsf = np.full(self.flux.shape, float(lsf), dtype=np.float32)
            _check_same_shape(lsf, self.flux, "spectrum_lsf_sigma", "spectrum_flux", ctx)
            self.lsf_sigma = lsf
        return n_bad


@dataclass
class Photometry:
    """Catalogue fluxes per band (any consistent unit, nanomaggies for SDSS/Legacy) with ivar."""

    bands: tuple[str, ...]
    flux: np.ndarray
    ivar: np.ndarray | None = None

    def validate(self, source=None, object_id=None) -> int:
        ctx = _where(source, object_id)
        self.flux = _as_float_array(self.flux, "photometry_flux", 1, ctx)
        self.bands = tuple(str(b) for b in self.bands)
        if len(self.bands) != self.flux.shape[0]:
            raise InvalidDataError(f"{len(self.bands)} band names for {self.flux.shape[0]} fluxes",
                                   field="photometry_band", **ctx)
        ivar = np.ones_like(self.flux) if self.ivar is None else _as_float_array(
            self.ivar, "photometry_ivar", 1, ctx)
        _check_same_shape(ivar, self.flux, "photometry_ivar", "photometry_flux", ctx)
        self.flux, self.ivar, _, n_bad = mask_bad_values(self.flux, ivar, np.ones(self.flux.shape, bool),
                                                    "photometry", ctx)
        return n_bad


@dataclass
class Galaxy:
    """One object: an id, a sky position, and any modalities that were observed."""

    object_id: str
    ra: float
    dec: float
    image: Image | None = None
    spectrum: Spectrum | None = None
    photometry: Photometry | None = None
    labels: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def has_position(self) -> bool:
        return bool(np.isfinite(self.ra) and np.isfinite(self.dec))

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in ("image", "spectrum", "photometry") if getattr(self, m) is not None)

    def validate(self, source: str | None = None) -> dict[str, int]:
        """Check every field; clean non-finite values by masking. Returns masked counts per modality."""
        oid = str(self.object_id).strip() if self.object_id is not None else ""
        if not oid:
            raise InvalidDataError("object_id is empty", source=source, field="object_id")
        self.object_id = oid
        ctx = _where(source, oid)
        for name in ("ra", "dec"):
            try:
                setattr(self, name, float(getattr(self, name)))
            except (TypeError, ValueError):
                raise InvalidDataError(f"not a number: {getattr(self, name)!r}", field=name, **ctx) from None
        # The position rule every read path shares (NaN in both = position unknown, e.g. Galaxy Zoo JPEGs:
        # HEALPix tile -1, never cross-matched; infinite or out-of-range values are errors).
        from .validate import check_positions

        check_positions([self.ra], [self.dec], [oid], source)
        masked = {}
        for modality in self.modalities:
            masked[modality] = getattr(self, modality).validate(source, oid)
        for key, value in self.labels.items():
            if isinstance(value, (float, np.floating)) and np.isinf(value):
                raise InvalidDataError("label is infinite", field=key, **ctx)
        return masked


def check_unique_ids(object_ids, source: str | None = None) -> None:
    """Raise if an object id occurs twice (a duplicated id makes every later join ambiguous)."""
    ids = np.asarray([str(i) for i in object_ids])
    uniq, counts = np.unique(ids, return_counts=True)
    dup = uniq[counts > 1]
    if dup.size:
        raise InvalidDataError(f"duplicated object ids: {dup[:5].tolist()}"
                               + (f" and {dup.size - 5} more" if dup.size > 5 else ""),
                               source=source, field="object_id")


def labels_from_mapping(mapping: Mapping[str, object]) -> dict[str, float | int | str]:
    """Convert numpy scalars to plain Python values so labels compare and serialise cleanly."""
    out = {}
    for key, value in mapping.items():
        if isinstance(value, (bytes, np.bytes_)):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        out[str(key)] = value
    return out
