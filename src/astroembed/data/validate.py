"""The validation rules every read path applies: one place, so that `embed`, `info`, `index`, `search
--file`, the Python API and :class:`~astroembed.data.mmu.MMUSurvey` accept and refuse the same files.

Rules (each failure is an :class:`~astroembed.data.records.InvalidDataError` naming the file, the
object id and the field; a row's place in a batch is never used to name it):

- **Tile structure** (:func:`check_tile`): the columns ``object_id``, ``ra``, ``dec`` exist; every column
  has one row per object id; each modality's columns have the layout's shapes (``image_array``
  (n, bands, H, W) with ``image_band`` (n, bands) and ``image_ivar`` / ``image_mask`` like the array;
  ``spectrum_*`` (n, L) alike; ``photometry_*`` (n, P) alike); object ids are non-empty and unique.
- **Survey** (:func:`check_unique_across`): an object id occurs in one tile only.
- **Rows** (:func:`check_rows`): ra in [0, 360] and dec in [-90, 90] degrees, or both NaN (position
  unknown); an image row either has a name for every band (distinct names) or none (no image); an
  inverse variance is never negative (NaN/inf are masked, as in :mod:`astroembed.data.records`); a
  spectrum's real wavelengths (> 0) are finite, strictly increasing and followed only by padding
  (<= 0, the writer's -1).
- **Model inputs** (:class:`ModelInputs`): band *names* must match the model's (:func:`band_order`
  reorders planes or picks a subset by name; ``bands_as`` declares that differently named planes are
  intended as given bands); a spectrum must cover at least ``MIN_GRID_COVERAGE`` of the model's
  wavelength range (:func:`check_wavelength_coverage`), and one that misses it but would cover it in
  nm, micron or log10(Angstrom) is reported as being in that unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .errors import InvalidDataError

__all__ = ["check_tile", "check_unique_across", "check_positions", "check_rows", "check_image_rows",
           "check_spectrum_rows", "band_order", "check_wavelength_coverage", "ModelInputs",
           "MIN_GRID_COVERAGE", "decode_strings"]

# A spectrum must overlap this fraction of the model's wavelength range: below it, the resampled input is
# mostly empty and every such spectrum embeds to nearly the same vector. SDSS (3800-9200 A) on the DESI
# grid (3600-9824 A) covers 87 %; one broad-band filter's width (~1500 A) covers about 24 %.
MIN_GRID_COVERAGE = 0.2
# Unit mistakes that a wavelength range gives away: name -> conversion to Angstrom.
_UNIT_GUESSES = (("nm", lambda w: w * 10.0), ("micron", lambda w: w * 1e4),
                 ("log10(Angstrom)", lambda w: 10.0 ** np.clip(w, -30, 30)))
# Columns whose trailing shape must equal their modality's main column; name -> main column.
_SAME_SHAPE = {"image_ivar": "image_array", "image_mask": "image_array", "spectrum_ivar": "spectrum_flux",
               "spectrum_lambda": "spectrum_flux", "spectrum_mask": "spectrum_flux",
               "spectrum_lsf_sigma": "spectrum_flux", "photometry_ivar": "photometry_flux",
               "photometry_band": "photometry_flux"}
_NDIM = {"image_array": 4, "image_band": 2, "spectrum_flux": 2, "spectrum_lambda": 2, "spectrum_ivar": 2,
         "photometry_flux": 2}
_REQUIRED_WITH = {"image_array": ("image_band",), "spectrum_flux": ("spectrum_lambda",),
                  "photometry_flux": ("photometry_band",)}


def decode_strings(values) -> np.ndarray:
    """HDF5 string values (bytes or str, any shape) as an object array of str."""
    arr = np.asarray(values)
    if arr.dtype.kind in ("S", "O"):
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel()],
                        dtype=object).reshape(arr.shape)
    return arr


def _first(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


# ------------------------------------------------------------------------------------------ structure

def check_tile(f, source: str) -> np.ndarray:
    """Check an open MMU tile's columns (names, row counts, shapes) and ids; return its object ids (str).

    Reads only ``object_id``; shapes come from the HDF5 metadata, so this is cheap for any tile size.
    """
    missing = [c for c in ("object_id", "ra", "dec") if c not in f]
    if missing:
        raise InvalidDataError(f"missing required column(s) {missing}", source=source, field=missing[0])
    n = int(f["object_id"].shape[0]) if f["object_id"].shape else 0
    for name in f.keys():
        shape = getattr(f[name], "shape", None)
        if shape is None:  # a group: the layout has only datasets
            raise InvalidDataError("is a group, not a column", source=source, field=name)
        if shape[:1] != (n,):
            raise InvalidDataError(f"has {shape[0] if shape else 0} rows (shape {shape}), object_id has {n}",
                                   source=source, field=name)
    for name, ndim in _NDIM.items():
        if name in f and f[name].ndim != ndim:
            raise InvalidDataError(f"expected {ndim} dimensions (objects first), got shape {f[name].shape}",
                                   source=source, field=name)
    for main, needed in _REQUIRED_WITH.items():
        for name in needed:
            if main in f and name not in f:
                raise InvalidDataError(f"column missing beside {main}", source=source, field=name)
    for name, main in _SAME_SHAPE.items():
        if name == "image_mask" and main in f and name in f and f[name].shape == f[main].shape[:1] + f[main].shape[2:]:
            continue  # one (H, W) mask per object (MMU's Legacy Surveys samples), broadcast to the bands on read
        if name in f and main in f and f[name].shape != f[main].shape:
            raise InvalidDataError(f"shape {f[name].shape} does not match {main} shape {f[main].shape}",
                                   source=source, field=name)
    if "image_array" in f and f["image_band"].shape[1] != f["image_array"].shape[1]:
        raise InvalidDataError(f"{f['image_band'].shape[1]} band names for {f['image_array'].shape[1]} "
                               f"image planes", source=source, field="image_band")
    for name in ("ra", "dec", "healpix"):
        if name in f and f[name].ndim != 1:
            raise InvalidDataError(f"expected one value per object, got shape {f[name].shape}", source=source,
                                   field=name)
    ids = decode_strings(f["object_id"][:]).astype(str)
    if ids.ndim != 1:
        raise InvalidDataError(f"expected one id per object, got shape {ids.shape}", source=source,
                               field="object_id")
    check_unique_across([ids], [source])
    return ids


def check_unique_across(ids_per_tile: Sequence[np.ndarray], sources: Sequence[str]) -> None:
    """Object ids must be non-empty and unique over all tiles; an error names both files of a duplicate."""
    if not ids_per_tile:
        return
    ids = np.concatenate([np.asarray(i, dtype=str) for i in ids_per_tile])
    owner = np.concatenate([np.full(len(i), k) for k, i in enumerate(ids_per_tile)])
    empty = np.char.strip(ids) == ""
    if empty.any():
        raise InvalidDataError(f"{int(empty.sum())} empty object id(s)", source=str(sources[owner[_first(empty)]]),
                               field="object_id")
    order = np.argsort(ids, kind="stable")
    same = ids[order][1:] == ids[order][:-1]
    if same.any():
        k = _first(same)
        a, b = order[k], order[k + 1]
        where = (f"also in {sources[owner[b]]}" if owner[a] != owner[b] else "twice in this file")
        raise InvalidDataError(f"duplicated object id ({where}; {int(same.sum())} duplicate(s) in all)",
                               source=str(sources[owner[a]]), object_id=str(ids[a]), field="object_id")


# ----------------------------------------------------------------------------------------------- rows

def check_positions(ra, dec, object_ids, source=None) -> None:
    """ra in [0, 360], dec in [-90, 90] degrees; NaN in both means 'position unknown' (documented)."""
    ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
    for name, values, lo, hi in (("ra", ra, 0.0, 360.0), ("dec", dec, -90.0, 90.0)):
        bad = ~np.isnan(values) & ~((values >= lo) & (values <= hi))
        if bad.any():
            i = _first(bad)
            raise InvalidDataError(f"{values[i]} is outside [{lo}, {hi}] degrees", source=source,
                                   object_id=str(object_ids[i]), field=name)
    half = np.isnan(ra) != np.isnan(dec)
    if half.any():
        i = _first(half)
        raise InvalidDataError("ra and dec must both be known or both be NaN (position unknown)", source=source,
                               object_id=str(object_ids[i]), field="ra" if np.isnan(ra[i]) else "dec")


def _check_ivar(ivar, object_ids, source, field_name, rows=None) -> None:
    ivar = np.asarray(ivar)
    negative = (ivar < 0).reshape(len(ivar), -1).any(axis=1)  # NaN compares False: masked, not an error
    if rows is not None:
        negative &= rows
    if negative.any():
        i = _first(negative)
        n = int(np.sum(ivar[i] < 0))
        raise InvalidDataError(f"{n} negative inverse-variance value(s); ivar must be >= 0 (0 = no information)",
                               source=source, object_id=str(object_ids[i]), field=field_name)


def check_image_rows(bands, object_ids, source=None, ivar=None) -> np.ndarray:
    """Check image rows (band names (n, B), optional ivar (n, B, H, W)); return which rows have an image."""
    bands = decode_strings(bands)
    named = bands != ""
    present = named.any(axis=1)
    partial = present & ~named.all(axis=1)
    if partial.any():
        i = _first(partial)
        raise InvalidDataError(f"band names {bands[i].tolist()} leave a plane unnamed", source=source,
                               object_id=str(object_ids[i]), field="image_band")
    for i in np.flatnonzero(present):
        if len(set(bands[i])) != bands.shape[1]:
            raise InvalidDataError(f"duplicated band names {bands[i].tolist()}", source=source,
                                   object_id=str(object_ids[i]), field="image_band")
    if ivar is not None:
        _check_ivar(ivar, object_ids, source, "image_ivar", rows=present)
    return present


def check_spectrum_rows(wavelength, object_ids, source=None, ivar=None) -> np.ndarray:
    """Check spectrum rows (wavelength (n, L), padding <= 0 at the end); return which rows have a spectrum."""
    wave = np.asarray(wavelength, dtype=np.float64)
    nonfinite = ~np.isfinite(wave).all(axis=1)
    if nonfinite.any():
        i = _first(nonfinite)
        raise InvalidDataError("non-finite wavelengths (padding is -1, not NaN)", source=source,
                               object_id=str(object_ids[i]), field="spectrum_lambda")
    real = wave > 0
    n_real = real.sum(axis=1)
    present = n_real > 0
    inner_pad = present & ~(real == (np.arange(wave.shape[1]) < n_real[:, None])).all(axis=1)
    if inner_pad.any():
        i = _first(inner_pad)
        raise InvalidDataError("wavelengths <= 0 inside the spectrum; only a trailing run (the -1 padding) "
                               "is allowed", source=source, object_id=str(object_ids[i]), field="spectrum_lambda")
    steps_ok = (np.diff(wave, axis=1) > 0) | ~real[:, 1:]
    unordered = ~steps_ok.all(axis=1)
    if unordered.any():
        i = _first(unordered)
        k = _first(~steps_ok[i])
        raise InvalidDataError(f"wavelengths must be strictly increasing; pixel {k + 1} ({wave[i, k + 1]:g} A) "
                               f"follows {wave[i, k]:g} A", source=source, object_id=str(object_ids[i]),
                               field="spectrum_lambda")
    if ivar is not None:
        _check_ivar(np.where(real, ivar, 0.0), object_ids, source, "spectrum_ivar", rows=present)
    return present


def check_rows(columns: Mapping[str, np.ndarray], object_ids, source=None) -> None:
    """Apply every row rule to the columns given (rows of one tile, first axis = object)."""
    if "ra" in columns and "dec" in columns:
        check_positions(columns["ra"], columns["dec"], object_ids, source)
    if "image_band" in columns:
        check_image_rows(columns["image_band"], object_ids, source, columns.get("image_ivar"))
    if "spectrum_lambda" in columns:
        check_spectrum_rows(columns["spectrum_lambda"], object_ids, source, columns.get("spectrum_ivar"))
    if "photometry_ivar" in columns:
        _check_ivar(columns["photometry_ivar"], object_ids, source, "photometry_ivar")


# --------------------------------------------------------------------------------------- model inputs

def band_order(data_bands: Sequence[str], model_bands: Sequence[str], bands_as: Sequence[str] | None = None,
               source=None, object_id=None) -> np.ndarray | None:
    """Which input planes feed the model's bands, by name: indices into the input planes, or ``None``
    when the planes are already the model's bands in the model's order.

    ``bands_as`` renames the input planes, in order, before matching: it declares that, e.g., a u,g,r
    cutout is intended to stand in for a g,r,z model (``bands_as=("g", "r", "z")``). Planes in another
    order are reordered, and extra planes (g,r,i,z for a g,r,z model) are left out.
    """
    data = tuple(str(b) for b in data_bands)
    if bands_as is not None:
        declared = tuple(str(b) for b in bands_as)
        if len(declared) != len(data):
            raise InvalidDataError(f"bands_as names {len(declared)} bands {list(declared)} for "
                                   f"{len(data)} planes {list(data)}", source=source, object_id=object_id,
                                   field="image_band")
        data = declared
    model = tuple(str(b) for b in model_bands)
    if data == model:
        return None
    missing = [b for b in model if b not in data]
    if missing:
        raise InvalidDataError(
            f"bands {list(data)} but the model was trained on {list(model)} (missing {missing}); if these "
            f"planes are meant as the model's bands, declare it: --bands-as {','.join(model)} "
            f"(API: bands_as={model!r})", source=source, object_id=object_id, field="image_band")
    return np.array([data.index(b) for b in model])


def _coverage(lo: np.ndarray, hi: np.ndarray, grid: tuple[float, float]) -> np.ndarray:
    overlap = np.minimum(hi, grid[1]) - np.maximum(lo, grid[0])
    return np.clip(overlap, 0.0, None) / (grid[1] - grid[0])


def check_wavelength_coverage(wavelength, grid: tuple[float, float], object_ids=None, source=None,
                              min_coverage: float = MIN_GRID_COVERAGE) -> None:
    """Every spectrum must cover ``min_coverage`` of the model's range ``grid`` (Angstrom).

    ``wavelength``: (L,) shared or (n, L) per row, padding (<= 0) allowed at the end. A spectrum that
    falls short but would cover the range if its values were nm, micron or log10(Angstrom) is reported
    as being in that unit. Without ``object_ids`` an object is named by its index in the input.
    """
    wave = np.atleast_2d(np.asarray(wavelength, dtype=np.float64))
    real = wave > 0
    lo = np.where(real, wave, np.inf).min(axis=1)
    hi = np.where(real, wave, -np.inf).max(axis=1)
    covered = _coverage(lo, hi, grid)
    short = real.any(axis=1) & (covered < min_coverage)
    if not short.any():
        return
    i = _first(short)
    name = str(object_ids[i]) if object_ids is not None else f"#{i} of the input"
    expected = f"the model expects Angstrom covering at least {min_coverage:.0%} of {grid[0]:g}-{grid[1]:g} A"
    for unit, to_angstrom in _UNIT_GUESSES:
        if _coverage(to_angstrom(lo[i:i + 1]), to_angstrom(hi[i:i + 1]), grid)[0] >= min_coverage:
            raise InvalidDataError(f"wavelengths {lo[i]:g}-{hi[i]:g} look like {unit}, not Angstrom; {expected}",
                                   source=source, object_id=name, field="spectrum_lambda")
    raise InvalidDataError(f"wavelengths {lo[i]:g}-{hi[i]:g} A cover {covered[i]:.0%} of the model's grid; "
                           f"{expected}", source=source, object_id=name, field="spectrum_lambda")


@dataclass(frozen=True)
class ModelInputs:
    """What a model accepts: its band names (images) and wavelength range (spectra), plus the user's
    declaration ``bands_as`` (see :func:`band_order`). Built from a loaded embedder by :meth:`of`."""

    bands: tuple[str, ...] | None = None
    wave_range: tuple[float, float] | None = None
    bands_as: tuple[str, ...] | None = None
    photometry_bands: tuple[str, ...] | None = None  # a photometry model's bands (matched by name)

    @classmethod
    def of(cls, embedder, bands_as: Sequence[str] | None = None) -> "ModelInputs":
        bands = getattr(embedder, "bands", None)
        spectrum = (getattr(embedder, "spectrum_preprocess_config", None)
                    or (getattr(embedder, "preprocess_config", None) if getattr(embedder, "modality", "")
                        == "spectrum" else None))
        wave_range = (float(spectrum.wave_min), float(spectrum.wave_max)) if spectrum is not None else None
        photometry_bands = getattr(embedder, "photometry_bands", None)
        return cls(tuple(bands) if bands is not None else None, wave_range,
                   tuple(bands_as) if bands_as is not None else None,
                   tuple(photometry_bands) if photometry_bands is not None else None)

    def image_planes(self, data_bands, source=None, object_id=None) -> np.ndarray | None:
        """Input plane indices for the model's bands (``None``: use the planes as they are)."""
        if self.bands is None:
            return None
        return band_order(data_bands, self.bands, self.bands_as, source, object_id)

    def check_spectra(self, wavelength, object_ids=None, source=None) -> None:
        if self.wave_range is not None:
            check_wavelength_coverage(wavelength, self.wave_range, object_ids, source)
