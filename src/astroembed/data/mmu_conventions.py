"""What the columns of a Multimodal Universe (MMU) tile mean: the one table both readers and the writer follow.

The layout (one HDF5 file per HEALPix tile, nside 16 NESTED, ``<root>/<survey>/<config>/healpix=<N>/001-of-001.hdf5``,
one dataset per column, first axis = object) is shared by every MMU parent sample and by astroembed. What the
*contents* mean was checked against MultimodalUniverse/MultimodalUniverse @ 2dcff3dd5fb4d5160024bb8c1d8c05ac85676de9
(MIT), ``scripts/<survey>/build_parent_sample.py`` (writers) and ``scripts/<survey>/<survey>.py`` (readers):

======================  ==================================================================================
column                  meaning (MMU, and astroembed on read and write)
======================  ==================================================================================
object_id               int64 (DESI TARGETID, SDSS SPECOBJID, HSC) or fixed-length UTF-8 bytes (Legacy
                        Surveys ``BRICKNAME-OBJID``); read as text. astroembed writes int64 when every id is
                        a decimal integer, else fixed-length UTF-8.
image_array             (N, bands, H, W) float32, the survey's flux unit (nanomaggies for Legacy Surveys).
image_band              (N, bands) fixed-length UTF-8 (``des-g``, ``hsc-g``, ...).
image_mask              True = usable pixel (maskbits clean). Legacy Surveys stores one mask per object,
                        (N, H, W): it applies to every band and is broadcast on read. HSC: (N, bands, H, W).
image_ivar              1/variance; HSC writes ``nan_to_num(1/var)``, so a pixel of variance 0 holds the
                        float32 maximum: read as 0 (no information, masked).
image_psf_fwhm          arcsec; MMU writes an unknown PSF as 0 (``nan_to_num``): 0 is read as unknown (NaN).
spectrum_mask           **True = bad pixel** (DESI: ``(mask > 0) | (ivar < 1e-6)``; SDSS: ``and_mask |
                        (ivar <= 1e-6)``, padding True). astroembed's records use True = good, so the reader
                        inverts it and the writer writes True = bad.
spectrum_lsf_sigma      DESI and SDSS: line-spread sigma in **pixels**; converted on read to Angstrom by the
                        local pixel width ``|d lambda / d pixel|``. astroembed writes Angstrom (file attribute).
spectrum_lambda         Angstrom; padding pixels have lambda = -1 (both styles).
padding (spectra)       MMU (SDSS): lambda -1, flux and lsf copied from the last pixel, ivar 0, mask True.
                        older astroembed: lambda -1, flux 0, ivar 0, mask False, lsf NaN. Both are recognised
                        by lambda <= 0; astroembed now writes MMU's style.
survey catalogue        columns under the survey's own names (FLUX_G, EBV, Z, ...) stay labels; the flux
                        columns of :data:`PARENT_SAMPLES` are also read as astroembed photometry.
array columns           per-object arrays that are not a modality (``image_rgb``, ``blobmodel``,
                        ``object_mask``, ``spectrum_lsf``, ``catalog_*``) are *array columns*, not labels.
======================  ==================================================================================

Which rules apply to a tile is decided once per tile (:func:`tile_conventions`), in this order: options passed
by the user; the ``astroembed_conventions`` attribute astroembed writes on its tiles (MMU's readers ignore
attributes); a variable-length-string ``object_id``, which only astroembed before this table wrote (MMU's
writers store fixed-length bytes or integers), marks an old astroembed tile (spectrum mask True = good, lsf in
Angstrom); the parent sample named by the tile's survey folder. A tile that matches none of these and has a
``spectrum_mask`` cannot be read without the user saying what its mask means: the reader raises an error that
names the option.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import h5py
import numpy as np

from .records import InvalidDataError

MMU_REPOSITORY = "MultimodalUniverse/MultimodalUniverse"
MMU_COMMIT = "2dcff3dd5fb4d5160024bb8c1d8c05ac85676de9"

TILE_FILE = "001-of-001.hdf5"
IMAGE_COLUMNS = ("image_array", "image_band", "image_ivar", "image_mask", "image_psf_fwhm", "image_scale")
SPECTRUM_COLUMNS = ("spectrum_flux", "spectrum_ivar", "spectrum_lambda", "spectrum_mask", "spectrum_lsf_sigma")
PHOTOMETRY_COLUMNS = ("photometry_flux", "photometry_ivar", "photometry_band")
CORE_COLUMNS = ("object_id", "ra", "dec", "healpix")
STRING = h5py.string_dtype("utf-8")  # variable-length text columns, as h5py writes Python str
RESERVED = set(IMAGE_COLUMNS + SPECTRUM_COLUMNS + PHOTOMETRY_COLUMNS + CORE_COLUMNS)

CONVENTIONS_ATTRIBUTE = "astroembed_conventions"
MASK_MEANINGS = ("good", "bad")
LSF_UNITS = ("Angstrom", "pixel", "unknown")


@dataclass(frozen=True)
class BandColumn:
    """Where one photometric band lives in a survey's catalogue columns.

    ``column`` holds the flux (or AB magnitude); ``index`` selects the band when the column is (N, bands)
    (SDSS ``SPECTROFLUX``). ``error_column`` holds the inverse variance of a flux, or the error of a magnitude.
    """

    band: str
    column: str
    error_column: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class PhotometryMap:
    """Survey-native catalogue columns read as :class:`~astroembed.data.records.Photometry` (nanomaggies).

    ``kind`` is ``"nanomaggies"`` (flux columns and ivar columns) or ``"ab_mag"`` (magnitude and magnitude
    error columns, converted with flux = 10**((22.5 - m) / 2.5) nanomaggies and
    sigma_flux = flux * ln(10) / 2.5 * sigma_m). Fluxes are as catalogued: no extinction correction.
    """

    kind: str
    bands: tuple[BandColumn, ...]

    def columns(self) -> set[str]:
        return {b.column for b in self.bands} | {b.error_column for b in self.bands if b.error_column}


def _flux_bands(bands, prefix="FLUX_", ivar_prefix="FLUX_IVAR_"):
    return tuple(BandColumn(b if b.startswith("W") else b.lower(), f"{prefix}{b}", f"{ivar_prefix}{b}")
                 for b in bands)


@dataclass(frozen=True)
class Conventions:
    """The meaning of a tile's columns. ``origin`` says which rule chose it (shown in errors and ``info``)."""

    spectrum_mask_true_means: str | None  # "good", "bad", or None = unknown (reading a spectrum mask raises)
    lsf_sigma_unit: str = "unknown"
    photometry: PhotometryMap | None = None
    origin: str = ""
    script: str | None = None  # the MMU writer this follows, path at MMU_COMMIT


# Parent samples checked against their writers at MMU_COMMIT; keys are the survey folder names MMU uses.
PARENT_SAMPLES: dict[str, Conventions] = {
    "legacysurvey": Conventions(
        None, photometry=PhotometryMap("nanomaggies", _flux_bands(("G", "R", "I", "Z", "W1", "W2", "W3", "W4"))),
        origin="MMU parent sample legacysurvey", script="scripts/legacysurvey/build_parent_sample.py"),
    "hsc": Conventions(
        None, photometry=PhotometryMap("ab_mag", tuple(BandColumn(b, f"{b}_cmodel_mag", f"{b}_cmodel_magerr")
                                                      for b in "grizy")),
        origin="MMU parent sample hsc", script="scripts/hsc/build_parent_sample.py"),
    "desi": Conventions(
        "bad", "pixel", PhotometryMap("nanomaggies", _flux_bands(("G", "R", "Z"))),
        origin="MMU parent sample desi", script="scripts/desi/build_parent_sample.py"),
    "sdss": Conventions(
        "bad", "pixel", PhotometryMap("nanomaggies", tuple(BandColumn(b, "SPECTROFLUX", "SPECTROFLUX_IVAR", i)
                                                          for i, b in enumerate("ugriz"))),
        # lsf: spPlate HDU4 WAVEDISP, "Wavelength dispersion in pixels" (SDSS spPlate data model).
        origin="MMU parent sample sdss",
        script="scripts/sdss/build_parent_sample.py"),
}
ASTROEMBED = Conventions("bad", "Angstrom", origin="written by astroembed (file attribute)")
ASTROEMBED_BEFORE_MMU_CONVENTIONS = Conventions(
    "good", "Angstrom", origin="written by astroembed before it followed MMU's conventions "
                               "(variable-length string object_id, no attribute)")
UNKNOWN = Conventions(None, origin="unknown origin (no astroembed attribute, survey folder not a known MMU "
                                   "parent sample)")


def parent_sample_name(tile: Path) -> str | None:
    """The survey folder of a tile in the hive layout (``<survey>/<config>/healpix=N/file``), else None."""
    tile = Path(tile)
    if tile.parent.name.startswith("healpix=") and len(tile.parents) >= 4:
        return tile.parents[2].name
    return None


def conventions_attribute(conventions: Conventions = ASTROEMBED) -> str:
    """The JSON text astroembed stores in a tile's ``astroembed_conventions`` attribute."""
    return json.dumps({"spectrum_mask_true_means": conventions.spectrum_mask_true_means,
                       "spectrum_lsf_sigma_unit": conventions.lsf_sigma_unit, "mmu_commit": MMU_COMMIT})


def tile_conventions(tile: Path, f: h5py.File, spectrum_mask: str | None = None,
                     lsf_sigma_unit: str | None = None) -> Conventions:
    """The conventions of one open tile, by the rules in this module's docstring.

    ``spectrum_mask`` ("good" or "bad": what True means) and ``lsf_sigma_unit`` ("Angstrom", "pixel") override
    whatever the file or its parent sample says; use them for tiles whose origin is unknown.
    """
    if spectrum_mask is not None and spectrum_mask not in MASK_MEANINGS:
        raise ValueError(f"spectrum_mask must be one of {MASK_MEANINGS} (what True means), got {spectrum_mask!r}")
    if lsf_sigma_unit is not None and lsf_sigma_unit not in LSF_UNITS:
        raise ValueError(f"lsf_sigma_unit must be one of {LSF_UNITS}, got {lsf_sigma_unit!r}")
    conventions = _file_conventions(tile, f)
    if spectrum_mask is not None:
        conventions = replace(conventions, spectrum_mask_true_means=spectrum_mask,
                              origin=f"{conventions.origin}; spectrum_mask={spectrum_mask!r} given")
    if lsf_sigma_unit is not None:
        conventions = replace(conventions, lsf_sigma_unit=lsf_sigma_unit)
    return conventions


def _file_conventions(tile: Path, f: h5py.File) -> Conventions:
    text = f.attrs.get(CONVENTIONS_ATTRIBUTE)
    if text is not None:
        try:
            stored = json.loads(text.decode() if isinstance(text, bytes) else str(text))
            return replace(ASTROEMBED, spectrum_mask_true_means=stored["spectrum_mask_true_means"],
                           lsf_sigma_unit=stored["spectrum_lsf_sigma_unit"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidDataError(f"attribute '{CONVENTIONS_ATTRIBUTE}' is not astroembed's JSON ({exc})",
                                   source=str(tile)) from None
    if "object_id" in f and h5py.check_string_dtype(f["object_id"].dtype) is not None \
            and h5py.check_string_dtype(f["object_id"].dtype).length is None:
        return ASTROEMBED_BEFORE_MMU_CONVENTIONS
    return PARENT_SAMPLES.get(parent_sample_name(tile) or "", UNKNOWN)


# ------------------------------------------------------------------------------------ column rules

def good_spectrum_mask(stored: np.ndarray | None, conventions: Conventions, *, source=None, object_id=None
                       ) -> np.ndarray | None:
    """The stored ``spectrum_mask`` as True = good pixel (astroembed's records), or None if absent."""
    if stored is None:
        return None
    stored = np.asarray(stored).astype(bool)
    meaning = conventions.spectrum_mask_true_means
    if meaning is None:
        raise InvalidDataError(
            f"what True means in spectrum_mask is unknown for this tile ({conventions.origin}); MMU's DESI and "
            f"SDSS samples use True = bad pixel. Pass spectrum_mask='bad' or 'good' to MMUSurvey",
            source=source, object_id=object_id, field="spectrum_mask")
    return ~stored if meaning == "bad" else stored


def lsf_sigma_angstrom(lsf: np.ndarray | None, wavelength: np.ndarray, conventions: Conventions
                       ) -> np.ndarray | None:
    """Line-spread sigma in Angstrom; a sigma in pixels is scaled by the local pixel width, unknown -> NaN."""
    if lsf is None:
        return None
    lsf = np.asarray(lsf, dtype=np.float32)
    unit = conventions.lsf_sigma_unit
    if unit == "Angstrom":
        return lsf
    valid = np.asarray(wavelength) > 0  # padding (lambda -1) has no width, and must not bend its neighbours'
    if unit == "pixel" and valid.sum() > 1:
        # np.gradient: the centred pixel width, one-sided at the ends; exact for DESI's linear 0.8 A grid
        # and for SDSS's log-linear grid to second order.
        width = np.full(lsf.shape, np.nan)
        width[valid] = np.abs(np.gradient(np.asarray(wavelength, np.float64)[valid]))
        return (lsf * width).astype(np.float32)
    return np.full(lsf.shape, np.nan, np.float32)


def psf_fwhm_or_unknown(psf: np.ndarray | None) -> np.ndarray | None:
    """MMU writes an unknown PSF FWHM as 0 (``nan_to_num``); a FWHM of 0 is not physical: read it as NaN."""
    if psf is None:
        return None
    psf = np.asarray(psf, dtype=np.float32)
    return np.where(psf == 0, np.float32(np.nan), psf)


def image_ivar_from_stored(ivar: np.ndarray | None) -> np.ndarray | None:
    """HSC stores ``nan_to_num(1/var)``: a pixel of variance 0 (no data) becomes the float32 maximum.

    Such an ivar would claim infinite precision; it is read as 0 (no information), which masks the pixel.
    """
    if ivar is None:
        return None
    ivar = np.asarray(ivar, dtype=np.float32)
    saturated = ivar >= np.finfo(np.float32).max
    return np.where(saturated, np.float32(0), ivar) if saturated.any() else ivar


def image_mask_per_band(mask: np.ndarray | None, n_bands: int) -> np.ndarray | None:
    """An (H, W) mask (MMU Legacy Surveys: one per object, for every band) broadcast to (bands, H, W)."""
    if mask is None:
        return None
    mask = np.asarray(mask).astype(bool)
    if mask.ndim == 2:
        return np.broadcast_to(mask, (n_bands,) + mask.shape).copy()
    return mask


def photometry_from_columns(values: Mapping[str, np.ndarray], mapping: PhotometryMap
                            ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None] | None:
    """Bands, fluxes (nanomaggies) and ivars (None if no error column is present) of one object.

    ``values`` maps column name -> that object's value; bands whose column is absent are left out.
    """
    present = [b for b in mapping.bands if b.column in values]
    if not present:
        return None

    def pick(column, index):
        value = np.asarray(values[column], dtype=np.float64)
        return float(value[index] if index is not None else value)

    measured = np.array([pick(b.column, b.index) for b in present])
    have_errors = all(b.error_column in values for b in present)
    errors = np.array([pick(b.error_column, b.index) for b in present]) if have_errors else None
    if mapping.kind == "ab_mag":
        flux = 10.0 ** ((22.5 - measured) / 2.5)
        if errors is not None:
            with np.errstate(divide="ignore"):
                errors = 1.0 / (flux * np.log(10.0) / 2.5 * errors) ** 2
    else:
        flux = measured
    return (tuple(b.band for b in present), flux.astype(np.float32),
            None if errors is None else errors.astype(np.float32))
