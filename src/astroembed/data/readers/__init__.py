"""Readers for real survey files. Each returns ``list[Galaxy]`` with every record validated
against the file it came from (see :mod:`astroembed.data.records` for the masking policy).

=========================  ==============================================================
``read_sdss_spectrum``     SDSS/BOSS spec-lite FITS (COADD + SPECOBJ HDUs)
``read_desi_coadd``        DESI coadd FITS (B/R/Z arms merged) + redrock redshifts
``read_legacysurvey_cutout`` Legacy Surveys (bands, H, W) FITS cutouts with WCS
``read_image_folder``      folders of JPEG/PNG colour cutouts (``iter_image_folder``: lazy)
``read_catalog``           FITS tables, CSV, Parquet, whitespace text catalogues
``read_any``               picks one of the above from the path
=========================  ==============================================================

Readers report skipped objects and masked values with :class:`ReaderWarning`; bad input raises
:class:`~astroembed.data.records.InvalidDataError` naming the file (and object/field).
"""

from __future__ import annotations

from pathlib import Path

from ..records import Galaxy, InvalidDataError
from ._common import ReaderWarning, check_file, open_fits
from .catalog import CSV_SUFFIXES, FITS_SUFFIXES, PARQUET_SUFFIXES, read_catalog
from .desi import read_desi_coadd
from .image_folder import IMAGE_SUFFIXES, iter_image_folder, read_image_file, read_image_folder
from .legacysurvey import read_legacysurvey_cutout
from .sdss import read_sdss_spectrum

__all__ = [
    "InvalidDataError",
    "ReaderWarning",
    "read_any",
    "read_catalog",
    "read_desi_coadd",
    "read_image_file",
    "read_image_folder",
    "iter_image_folder",
    "read_legacysurvey_cutout",
    "read_sdss_spectrum",
]


def fits_kind(path: str | Path) -> str:
    """What a FITS file holds, from its HDU names: 'sdss', 'desi', 'redrock', 'cutout' or 'table'."""
    source = str(path)
    with open_fits(path) as hdul:
        names = {h.name.upper() for h in hdul}
        if {"COADD", "SPECOBJ"} <= names:
            return "sdss"
        if "FIBERMAP" in names and names & {"B_FLUX", "R_FLUX", "Z_FLUX", "BRZ_FLUX"}:
            return "desi"
        if "REDSHIFTS" in names:
            return "redrock"
        if hdul[0].header.get("NAXIS", 0) in (2, 3):
            return "cutout"
        if any(h.is_image is False for h in hdul):
            return "table"
    raise InvalidDataError(f"unsupported FITS layout (HDUs {sorted(names)}): not an SDSS spec-lite file, "
                           "DESI coadd, image cutout or table", source=source)


def _looks_like_text(path: Path) -> bool:
    head = path.read_bytes()[:4096]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a multi-byte character cut at the 4 KiB boundary
    return True


def read_any(path: str | Path, **kwargs) -> list[Galaxy]:
    """Read any supported input, chosen from the path; ``kwargs`` go to the chosen reader.

    - a folder: JPEG/PNG images under it (:func:`read_image_folder`);
    - ``.jpg``/``.jpeg``/``.png``: one image (:func:`read_image_file`);
    - FITS, by HDU names: COADD + SPECOBJ -> SDSS spectrum; FIBERMAP + X_FLUX -> DESI coadd;
      a 2-D/3-D primary array -> Legacy Surveys cutout; otherwise the first table -> catalogue;
      a redrock file alone is refused (it has redshifts but no spectra: read its coadd);
    - ``.csv``, ``.parquet``/``.pq``, and any other UTF-8 text file (read as a whitespace catalogue
      with a header line) -> :func:`read_catalog`.
    Anything else (binary files of unknown type) raises InvalidDataError naming the file.
    """
    path = Path(path)
    if path.is_dir():
        return read_image_folder(path, **kwargs)
    path = check_file(path)
    name = path.name.lower()
    if name.endswith(IMAGE_SUFFIXES):
        return read_image_file(path, **kwargs)
    if name.endswith(FITS_SUFFIXES):
        kind = fits_kind(path)
        if kind == "redrock":
            raise InvalidDataError("a redrock file holds redshifts only; read the matching coadd-*.fits "
                                   "(its redshifts are attached automatically)", source=str(path))
        reader = {"sdss": read_sdss_spectrum, "desi": read_desi_coadd,
                  "cutout": read_legacysurvey_cutout, "table": read_catalog}[kind]
        return reader(path, **kwargs)
    if name.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES) or _looks_like_text(path):
        return read_catalog(path, **kwargs)
    raise InvalidDataError(f"unsupported file type {path.suffix!r}: expected a folder of JPEG/PNG images, "
                           ".fits, .csv, .parquet or a text catalogue", source=str(path))
