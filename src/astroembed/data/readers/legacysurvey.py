"""Legacy Surveys image cutouts (the viewer's ``cutout.fits``): a primary HDU holding a
(bands, H, W) float32 array of nanomaggies with a celestial TAN WCS, band names in ``BANDS`` /
``BAND0``.. keywords. A 2-D single-band image is accepted too.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from ..records import Galaxy, Image, InvalidDataError
from ._common import finish, get_data, open_fits

__all__ = ["read_legacysurvey_cutout"]

DEFAULT_BANDS = ("g", "r", "z")
UNKNOWN_BAND = "unknown"  # name of the single band of a 2-D image whose header does not say
ID_KEYWORDS = ("OBJID", "OBJECT_ID", "OBJECT", "TARGETID")
IVAR_HDUS = ("IVAR", "INVVAR")


def _band_names(header, n_bands: int) -> tuple[str, ...] | None:
    """Band names from BAND0, BAND1, ..., else from a BANDS string like 'grz' or 'g,r,z', else
    FILTER/BAND for one band. Names are returned even when their count differs from the array's,
    so that validation reports the disagreement instead of silently pairing planes with bands."""
    per_band = []
    while isinstance(header.get(f"BAND{len(per_band)}"), str):
        per_band.append(header[f"BAND{len(per_band)}"].strip())
    if per_band:
        return tuple(per_band)
    bands = header.get("BANDS")
    if isinstance(bands, str) and bands.strip():
        bands = bands.strip()
        # The Legacy viewer writes single-letter bands run together ('grz').
        return tuple(b.strip() for b in bands.split(",")) if "," in bands else tuple(bands)
    if n_bands == 1:
        for key in ("FILTER", "BAND"):
            if isinstance(header.get(key), str) and header[key].strip():
                return (header[key].strip(),)
    return None


def read_legacysurvey_cutout(path: str | Path, bands: Sequence[str] | None = None,
                             object_id: str | None = None) -> list[Galaxy]:
    """Read one Legacy Surveys FITS cutout into a one-record list.

    - flux: the primary array as (bands, H, W) float32 nanomaggies (a 2-D array becomes one band);
      ivar from an ``IVAR``/``INVVAR`` extension of the same shape when there is one, else unknown.
    - bands: the ``bands`` argument, else the header (BAND0.., BANDS, FILTER), else g, r, z for a
      3-band array and "unknown" for a 2-D array; other band counts without names are an error
      (a model must know which plane is which band).
    - ra, dec: the sky position of the array centre, pixel ((W-1)/2, (H-1)/2), from the WCS
      (astropy.wcs); pixel_scale (arcsec/pixel) from the WCS too.
    - object_id: the argument, else header OBJID/OBJECT/TARGETID, else the file stem.
    """
    from astropy.wcs import WCS, FITSFixedWarning
    from astropy.wcs.utils import proj_plane_pixel_scales

    source = str(path)
    with open_fits(path) as hdul:
        hdu = hdul[0] if hdul[0].data is not None else next(
            (h for h in hdul if getattr(h, "is_image", False) and h.data is not None), None)
        if hdu is None:
            raise InvalidDataError("no image array in the file", source=source, field="image_array")
        header = hdu.header
        flux = np.asarray(get_data(hdu, source), dtype=np.float32)
        names = [h.name.upper() for h in hdul]
        ivar = next((np.asarray(get_data(hdul[n], source), dtype=np.float32) for n in IVAR_HDUS
                     if n in names), None)
    oid = object_id or next((str(header[k]).strip() for k in ID_KEYWORDS
                             if k in header and str(header[k]).strip()), None) or Path(path).stem
    if flux.ndim == 2:
        flux = flux[None]
        ivar = ivar[None] if ivar is not None and ivar.ndim == 2 else ivar
    if flux.ndim != 3:
        raise InvalidDataError(f"expected a (bands, H, W) or (H, W) array, got shape {flux.shape}",
                               source=source, object_id=oid, field="image_array")
    n_bands, height, width = flux.shape
    if bands is None:
        bands = _band_names(header, n_bands)
        if bands is None and n_bands == len(DEFAULT_BANDS):
            bands = DEFAULT_BANDS
        if bands is None and n_bands == 1:
            bands = (UNKNOWN_BAND,)
        if bands is None:
            raise InvalidDataError(f"{n_bands} bands without names in the header; pass bands=",
                                   source=source, object_id=oid, field="image_band")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # harmless keyword fix-ups
        try:
            wcs = WCS(header, naxis=2)
        except Exception as exc:  # astropy raises a zoo of types for broken WCS keywords
            raise InvalidDataError(f"invalid WCS ({exc})", source=source, object_id=oid, field="WCS") from None
    if not wcs.has_celestial:
        raise InvalidDataError("header has no celestial WCS (CTYPE1/2 RA---/DEC--)", source=source,
                               object_id=oid, field="WCS")
    centre = wcs.pixel_to_world_values((width - 1) / 2.0, (height - 1) / 2.0)
    ra, dec = float(centre[0]) % 360.0, float(centre[1])
    scales = proj_plane_pixel_scales(wcs.celestial) * 3600.0
    image = Image(flux=flux, bands=tuple(bands), ivar=ivar, pixel_scale=float(np.mean(scales)))
    return finish([Galaxy(oid, ra, dec, image=image)], source)
