"""Tabular catalogues (FITS tables, CSV, Parquet, whitespace text with a header line) to records
carrying photometry and labels.

Photometry is stored in flux units: nanomaggy columns (``FLUX_G`` with ``FLUX_IVAR_G``) are kept as
they are; AB magnitudes are converted to nanomaggies, flux = 10**(-0.4 * (m - 22.5)), with
ivar = 1 / (0.4 * ln(10) * flux * sigma_m)**2 from the magnitude error (first-order error
propagation). Sentinel magnitudes (non-finite, <= -90 or >= 90, e.g. -9999 or 99) become masked
fluxes; a missing/non-positive error gives ivar 0 (masked). With no error column at all the ivar
is unknown, which :class:`~astroembed.data.records.Photometry` stores as ones.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..records import Galaxy, InvalidDataError, Photometry, check_unique_ids, labels_from_mapping
from ._common import check_file, finish

__all__ = ["read_catalog", "load_table", "mag_to_nanomaggies"]

LN10 = np.log(10.0)
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
ID_CANDIDATES = ("object_id", "objid", "specobjid", "targetid", "galaxyid", "id", "name")
RA_CANDIDATES = ("ra", "ra_deg", "raj2000", "target_ra", "plug_ra", "alpha_j2000")
DEC_CANDIDATES = ("dec", "dec_deg", "dej2000", "decj2000", "target_dec", "plug_dec", "delta_j2000")
MAG_BANDS = "ugrizy"
# Magnitude column families, most preferred first; only one family becomes photometry.
MAG_FAMILIES = (
    re.compile(r"^([ugrizy])$"),
    re.compile(r"^(?:cmodel|model|petro|psf|fiber)?mag_([ugrizy])$", re.I),
    re.compile(r"^([ugrizy])_?mag$", re.I),
)
SENTINEL_MAG = 90.0


def mag_to_nanomaggies(mag: np.ndarray, mag_err: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """AB magnitudes to nanomaggies (and ivar from the magnitude error); sentinels become NaN."""
    mag = np.asarray(mag, dtype=np.float64)
    valid = np.isfinite(mag) & (np.abs(mag) < SENTINEL_MAG)
    flux = np.where(valid, 10.0 ** (-0.4 * (np.where(valid, mag, 22.5) - 22.5)), np.nan)
    if mag_err is None:
        return flux, None
    err = np.asarray(mag_err, dtype=np.float64)
    good_err = valid & np.isfinite(err) & (err > 0) & (err < SENTINEL_MAG)
    sigma_flux = 0.4 * LN10 * np.where(valid, flux, 1.0) * np.where(good_err, err, 1.0)
    ivar = np.where(good_err, 1.0 / sigma_flux**2, 0.0)
    return flux, ivar


def _read_text(path: Path, column_names: Sequence[str] | None):
    import pandas as pd

    source = str(path)
    header_index, names = None, None
    with open(path, encoding="utf-8", errors="strict") as fh:
        try:
            for i, line in enumerate(fh):
                if line.strip():
                    header_index, names = i, line.lstrip("#").split()
                    break
        except UnicodeDecodeError:
            raise InvalidDataError("not a text catalogue (not UTF-8 text)", source=source) from None
    if header_index is None:
        raise InvalidDataError("file holds only blank lines", source=source)
    if names and all(_is_number(n) for n in names) and column_names is None:
        raise InvalidDataError("first line is data, not a header naming the columns; pass column_names=",
                               source=source)
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, skiprows=header_index + 1, comment="#")
    except pd.errors.EmptyDataError:
        raise InvalidDataError("header line but no data rows", source=source) from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise InvalidDataError(f"cannot parse whitespace-separated rows ({exc})", source=source) from None
    if column_names is None and len(names) != table.shape[1]:
        column_names = _mlz_columns(path, table.shape[1])
        if column_names is None:
            raise InvalidDataError(f"header names {len(names)} columns but rows have {table.shape[1]}; "
                                   "pass column_names=", source=source)
    names = list(column_names) if column_names is not None else names
    if len(names) != table.shape[1]:
        raise InvalidDataError(f"{len(names)} column names for {table.shape[1]} columns", source=source)
    table.columns = names
    return table


def _mlz_columns(path: Path, n_columns: int) -> list[str] | None:
    """Column names from an MLZ ``<stem>.inputs`` file beside the catalogue (``Columns : a,b,..``).

    MLZ's own SDSS_MGS.train header line omits one name (``eu``); the .inputs file is where MLZ
    itself takes the column names from, so it is the authority when the two disagree.
    """
    inputs = path.with_suffix(".inputs")
    if not inputs.is_file():
        return None
    for line in inputs.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Columns":
            names = [c.strip() for c in value.split("#")[0].split(",") if c.strip()]
            return names if len(names) == n_columns else None
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_fits_table(path: Path):
    from astropy.table import Table
    from ._common import open_fits

    source = str(path)
    with open_fits(path) as hdul:
        hdu = next((h for h in hdul if h.is_image is False and h.data is not None), None)
        if hdu is None:
            raise InvalidDataError("no table HDU in the FITS file", source=source)
        table = Table(hdu.data)
    # Vector columns (e.g. 5-band arrays) are split into one scalar column per element.
    for name in list(table.colnames):
        if table[name].ndim > 1:
            col = table[name].reshape(len(table), -1)
            for k in range(col.shape[1]):
                table[f"{name}_{k}"] = col[:, k]
            table.remove_column(name)
    frame = table.to_pandas()
    for name in frame.columns:
        if frame[name].dtype == object:
            frame[name] = frame[name].map(lambda v: v.decode().strip() if isinstance(v, bytes) else v)
    return frame


def load_table(path: str | Path, column_names: Sequence[str] | None = None):
    """Load a catalogue file into a pandas DataFrame, by suffix: .csv, .parquet/.pq, FITS (first
    table HDU), anything else as whitespace-separated text with a header line (a leading '#' is
    allowed). Errors are InvalidDataError naming the file."""
    import pandas as pd

    path = check_file(path)
    source, name = str(path), path.name.lower()
    try:
        if name.endswith(CSV_SUFFIXES):
            table = pd.read_csv(path)
        elif name.endswith(PARQUET_SUFFIXES):
            table = pd.read_parquet(path)
        elif name.endswith(FITS_SUFFIXES):
            table = _read_fits_table(path)
        else:
            table = _read_text(path, column_names)
    except InvalidDataError:
        raise
    except pd.errors.EmptyDataError:
        raise InvalidDataError("no columns or rows", source=source) from None
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        # pyarrow's errors derive from these; the message keeps the library's reason.
        raise InvalidDataError(f"cannot read table ({type(exc).__name__}: {exc})", source=source) from None
    is_text = not name.endswith(FITS_SUFFIXES + PARQUET_SUFFIXES + CSV_SUFFIXES)
    if column_names is not None and not is_text:  # text files had them applied while parsing
        if len(column_names) != table.shape[1]:
            raise InvalidDataError(f"{len(column_names)} column names for {table.shape[1]} columns",
                                   source=source)
        table.columns = list(column_names)
    if len(table) == 0:
        raise InvalidDataError("table has no rows", source=source)
    table.columns = [str(c).strip() for c in table.columns]
    if len(set(table.columns)) != len(table.columns):
        raise InvalidDataError(f"duplicated column names {list(table.columns)}", source=source)
    return table


def _find(columns: Sequence[str], explicit: str | None, candidates: Sequence[str], source: str) -> str | None:
    if explicit is not None:
        if explicit not in columns:
            raise InvalidDataError(f"column not found (columns: {list(columns)})", source=source,
                                   field=explicit)
        return explicit
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), None)


def _band(column: str) -> str:
    """A band name from a photometry column: FLUX_G -> g, modelMag_r -> r, W1 stays W1."""
    m = re.match(r"^(?:flux_)(.+)$", column, re.I)
    if m:
        b = m.group(1)
        return b.upper() if b.upper().startswith("W") else b.lower()
    for family in MAG_FAMILIES:
        m = family.match(column)
        if m:
            return m.group(1).lower()
    return column


def _auto_flux_columns(columns: Sequence[str]) -> list[str]:
    flux = [c for c in columns if re.match(r"^flux_(?!ivar)[a-z0-9]+$", c, re.I)]
    if flux:
        return flux
    for family in MAG_FAMILIES:
        found = [c for c in columns if family.match(c)]
        if found:
            return found
    return []


def _error_column(column: str, columns: Sequence[str], is_flux: bool) -> tuple[str | None, str]:
    """The error column of a photometry column and its kind ('ivar' or 'sigma')."""
    lower = {c.lower(): c for c in columns}
    c = column.lower()
    if is_flux:
        ivar = "flux_ivar_" + c[len("flux_"):] if c.startswith("flux_") else c + "_ivar"
        if ivar in lower:
            return lower[ivar], "ivar"
    prefix_err = c.replace("mag_", "magerr_") if "mag_" in c else None
    if len(c) == 1:
        # A bare band letter: 'zerr' or 'z_err' is far more often a redshift error than a z-band
        # magnitude error, so only unambiguous spellings count.
        candidates = [f"e{c}", f"e_{c}", f"err_{c}", f"sigma_{c}", f"magerr_{c}", f"{c}_mag_err"]
    else:
        candidates = [f"e{c}", f"e_{c}", f"{c}_err", f"{c}err", f"err_{c}", f"{c}_error", f"sigma_{c}",
                      prefix_err]
    for cand in candidates:
        if cand and cand in lower:
            return lower[cand], "sigma"
    return None, "sigma"


def _photometry(table, flux_columns: Sequence[str], magnitudes: bool | None, source: str
                ) -> tuple[list[str], np.ndarray | None, np.ndarray | None, set[str]]:
    """Band names, (n, bands) flux and ivar in nanomaggies, and the columns used for them."""
    columns = list(table.columns)
    bands, fluxes, ivars, used = [], [], [], set()
    for c in flux_columns:
        is_flux = c.lower().startswith("flux") if magnitudes is None else not magnitudes
        err_col, err_kind = _error_column(c, columns, is_flux)
        values = _numeric(table[c], c, source)
        err = _numeric(table[err_col], err_col, source) if err_col else None
        if not is_flux:
            flux, ivar = mag_to_nanomaggies(values, err)
        elif err is None or err_kind == "ivar":
            flux, ivar = values, err
        else:  # a flux error (sigma); non-positive sigma means no information
            flux, ivar = values, np.where(err > 0, 1.0 / np.where(err > 0, err, 1.0) ** 2, 0.0)
        bands.append(_band(c))
        fluxes.append(flux)
        ivars.append(ivar)
        used.update({c, err_col} - {None})
    if not fluxes:
        return bands, None, None, used
    if all(v is None for v in ivars):
        return bands, np.stack(fluxes, 1), None, used
    # Bands without an error column get ivar 0 (no information) next to bands that have one.
    n = len(table)
    ivar = np.stack([np.zeros(n) if v is None else v for v in ivars], 1)
    return bands, np.stack(fluxes, 1), ivar, used


def read_catalog(path: str | Path, id_column: str | None = None, ra_column: str | None = None,
                 dec_column: str | None = None, flux_columns: Sequence[str] | None = None,
                 label_columns: Sequence[str] | None = None, magnitudes: bool | None = None,
                 column_names: Sequence[str] | None = None) -> list[Galaxy]:
    """Read a catalogue into one record per row, with photometry and labels.

    Auto-detection (case-insensitive) when an argument is None:
    - id: first of object_id, objid, specobjid, targetid, galaxyid, id, name; when none exists the
      ids are ``<file stem>-<row number>``. Ids must be unique.
    - ra/dec: ra, ra_deg, raj2000, target_ra, plug_ra, ... (degrees); NaN (position unknown) if absent.
    - photometry: ``FLUX_<band>`` columns (nanomaggies, ivar from ``FLUX_IVAR_<band>``), else one
      family of AB magnitude columns: single-letter ``u g r i z y`` (lower case; ``Z`` is usually a
      redshift), else ``[cmodel|model|petro|psf|fiber]mag_<band>``, else ``<band>_mag``. Error
      columns are found by name: ``e<col>``, ``err_<col>``, ``sigma_<col>``, ``<col>_err``,
      ``<prefix>magerr_<band>`` (for bare band letters not ``<col>_err``/``<col>err``: ``zerr`` is
      usually the redshift error).
      ``magnitudes`` forces how explicit ``flux_columns`` are read (None: names starting with
      ``flux`` are fluxes, the rest magnitudes). Magnitudes are stored as nanomaggies: see the
      module docstring.
    - labels: every remaining column, except colours of the photometry bands (``u-g``, ``eu-g``)
      which are derived from it. Numbers stay numbers, text stays text.
    ``column_names`` names the columns of a text file whose header line is missing or wrong (an
    MLZ ``.inputs`` file beside the catalogue is used automatically when its count matches).
    """
    source = str(path)
    table = load_table(path, column_names)
    columns = list(table.columns)
    id_col = _find(columns, id_column, ID_CANDIDATES, source)
    ra_col = _find(columns, ra_column, RA_CANDIDATES, source)
    dec_col = _find(columns, dec_column, DEC_CANDIDATES, source)
    if (ra_col is None) != (dec_col is None):
        raise InvalidDataError("found only one of the ra/dec columns; pass both ra_column and dec_column",
                               source=source, field=ra_col or dec_col)
    if flux_columns is None:
        flux_columns = _auto_flux_columns(columns)
    for c in flux_columns:
        if c not in columns:
            raise InvalidDataError("photometry column not found", source=source, field=c)

    n = len(table)
    if id_col is None:
        ids = np.array([f"{Path(path).stem}-{i}" for i in range(n)])
    else:
        raw = table[id_col]
        if raw.isna().any():
            first = int(np.argmax(raw.isna().to_numpy()))
            raise InvalidDataError(f"{int(raw.isna().sum())} empty ids, first at row {first}",
                                   source=source, field=id_col)
        ids = np.array([_id_text(v) for v in raw])
    check_unique_ids(ids, source=source)

    bands, flux_arr, ivar_arr, phot_used = _photometry(table, flux_columns, magnitudes, source)
    used = {id_col, ra_col, dec_col} | phot_used

    if label_columns is None:
        colours = {f"{a}-{b}" for a in bands for b in bands} | {f"e{a}-{b}" for a in bands for b in bands}
        label_columns = [c for c in columns if c not in used and c not in colours]
    for c in label_columns:
        if c not in columns:
            raise InvalidDataError("label column not found", source=source, field=c)
    label_values = {c: table[c].to_numpy() for c in label_columns}
    ra = _numeric(table[ra_col], ra_col, source) if ra_col else np.full(n, np.nan)
    dec = _numeric(table[dec_col], dec_col, source) if dec_col else np.full(n, np.nan)

    galaxies = []
    for i in range(n):
        photometry = None
        if flux_arr is not None:
            photometry = Photometry(bands=tuple(bands), flux=flux_arr[i],
                                    ivar=None if ivar_arr is None else ivar_arr[i])
        labels = labels_from_mapping({c: v[i] for c, v in label_values.items()})
        galaxies.append(Galaxy(ids[i], ra[i], dec[i], photometry=photometry, labels=labels))
    return finish(galaxies, source, unique=False)


def _id_text(value) -> str:
    """Ids as text; integral floats (pandas turns int columns with gaps into float) lose the '.0'."""
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _numeric(series, name: str, source: str) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & series.notna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidDataError(f"non-numeric value {series.iloc[i]!r} at row {i}", source=source, field=name)
    return values
