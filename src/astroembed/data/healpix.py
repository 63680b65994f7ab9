"""HEALPix tiling as the Multimodal Universe uses it: nside 16, NESTED ordering.

Objects without a sky position (ra = dec = NaN, e.g. Galaxy Zoo JPEGs) go to tile -1.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy_healpix import HEALPix

NSIDE = 16
UNKNOWN_TILE = -1


def healpix_index(ra, dec, nside: int = NSIDE) -> np.ndarray:
    """NESTED HEALPix index of each (ra, dec) in degrees; -1 where the position is unknown (NaN)."""
    ra = np.atleast_1d(np.asarray(ra, dtype=np.float64))
    dec = np.atleast_1d(np.asarray(dec, dtype=np.float64))
    out = np.full(ra.shape, UNKNOWN_TILE, dtype=np.int64)
    known = np.isfinite(ra) & np.isfinite(dec)
    if known.any():
        hp = HEALPix(nside=nside, order="nested")
        out[known] = hp.lonlat_to_healpix(ra[known] * u.deg, dec[known] * u.deg)
    return out


def neighbouring_tiles(tile: int, nside: int = NSIDE) -> np.ndarray:
    """The tile itself and its (up to 8) neighbours, for matches that straddle a tile border."""
    if tile == UNKNOWN_TILE:
        return np.array([], dtype=np.int64)
    hp = HEALPix(nside=nside, order="nested")
    neighbours = np.asarray(hp.neighbours(int(tile))).ravel()
    return np.unique(np.concatenate([[tile], neighbours[neighbours >= 0]])).astype(np.int64)
