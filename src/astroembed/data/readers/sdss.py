"""SDSS / BOSS spec-lite FITS files (``spec-PLATE-MJD-FIBER.fits``).

Layout (SDSS data model, spec-lite): HDU ``COADD`` is a table with one row per log-lambda pixel
(``loglam`` = log10 of the vacuum wavelength in Angstrom, ``flux`` and ``ivar`` in
1e-17 erg/s/cm^2/A, ``and_mask``, ``wdisp``); HDU ``SPECOBJ`` is a one-row table with the pipeline
redshift and classification.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..records import Galaxy, InvalidDataError, Spectrum
from ._common import as_str, finish, get_column, get_data, get_hdu, open_fits

__all__ = ["read_sdss_spectrum"]

LN10 = np.log(10.0)
# The log-lambda pixel is 1e-4 dex wide; wdisp is the LSF Gaussian sigma counted in those pixels.
DLOGLAM = 1e-4


def read_sdss_spectrum(path: str | Path) -> list[Galaxy]:
    """Read one SDSS spec-lite file into a one-record list.

    - wavelength = 10**loglam (Angstrom); flux, ivar as stored;
      mask = (and_mask == 0) & (ivar > 0) (True = good).
    - lsf_sigma (Angstrom) = wdisp * 1e-4 * ln(10) * wavelength, since a pixel of 1e-4 dex spans
      1e-4 * ln(10) * lambda Angstrom.
    - labels: ``redshift`` (Z), ``redshift_err`` (Z_ERR), ``zwarning`` (ZWARNING, when present),
      ``class`` (CLASS), ``subclass`` (SUBCLASS).
    - ra, dec: PLUG_RA, PLUG_DEC (degrees); object_id ``sdss-PPPP-MMMMM-FFFF``, zero-padded as in the
      file names.
    """
    source = str(path)
    with open_fits(path) as hdul:
        coadd = get_data(get_hdu(hdul, "COADD", source), source)
        specobj = get_data(get_hdu(hdul, "SPECOBJ", source), source)
        if len(specobj) != 1:
            raise InvalidDataError(f"expected one SPECOBJ row, found {len(specobj)}", source=source,
                                   field="SPECOBJ")
        plate, mjd, fiber = (int(get_column(specobj, c, source)[0]) for c in ("PLATE", "MJD", "FIBERID"))
        oid = f"sdss-{plate:04d}-{mjd:05d}-{fiber:04d}"
        cols = {c: get_column(coadd, c, source, oid).astype(np.float64)
                for c in ("loglam", "flux", "ivar", "wdisp")}
        and_mask = get_column(coadd, "and_mask", source, oid)
        ra = float(get_column(specobj, "PLUG_RA", source, oid)[0])
        dec = float(get_column(specobj, "PLUG_DEC", source, oid)[0])
        labels: dict[str, float | int | str] = {
            "redshift": float(get_column(specobj, "Z", source, oid)[0]),
            "class": as_str(get_column(specobj, "CLASS", source, oid)[0]),
            "subclass": as_str(get_column(specobj, "SUBCLASS", source, oid)[0]),
        }
        names = {n.upper() for n in specobj.columns.names}
        if "Z_ERR" in names:
            labels["redshift_err"] = float(get_column(specobj, "Z_ERR", source, oid)[0])
        if "ZWARNING" in names:
            labels["zwarning"] = int(get_column(specobj, "ZWARNING", source, oid)[0])

    if not np.all(np.isfinite(cols["loglam"])):
        raise InvalidDataError("non-finite loglam values", source=source, object_id=oid, field="loglam")
    wavelength = 10.0 ** cols["loglam"]
    ivar = cols["ivar"]
    # NaN ivar compares False here and is masked again (and counted) by Spectrum.validate.
    mask = (and_mask == 0) & (ivar > 0)
    lsf_sigma = cols["wdisp"] * DLOGLAM * LN10 * wavelength
    spectrum = Spectrum(flux=cols["flux"], wavelength=wavelength, ivar=ivar, mask=mask,
                        lsf_sigma=lsf_sigma)
    return finish([Galaxy(oid, ra, dec, spectrum=spectrum, labels=labels)], source)
