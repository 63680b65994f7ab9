"""Read an embedding catalogue, or the part of it covering some tiles or a sky region, as one table.

    table = read_table("emb/image", cone=(150.1, 2.2, 1.0))   # objects within 1 deg of (RA, Dec)
    table = read_table("emb/image", tiles=[1234, 1235])        # whole HEALPix tiles

Only the parts (files) of the tiles that can hold the selection are opened: a part is chosen by its
folder name (``healpix_<N>``), never by reading it. The tiles are the Multimodal Universe's (nside 16,
NESTED; :mod:`astroembed.data.healpix`). Any Parquet reader opens the whole folder too (see the README);
this module is for selections and for the exports of :mod:`astroembed.embed.export`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from astroembed.data.healpix import NSIDE
from astroembed.data.records import InvalidDataError
from astroembed.embed.store import list_parts, tile_of_part

__all__ = ["tiles_in_cone", "select_parts", "read_table", "angular_separation_deg"]


@lru_cache(maxsize=4)
def _tile_radius_deg(nside: int) -> float:
    """Largest angular distance from a tile's centre to its boundary (3.78 deg at nside 16).

    Widening a cone by this much makes astropy-healpix's search (which keeps tiles whose *centre* lies
    in the cone) return every tile that the cone overlaps.
    """
    from astropy.coordinates import SkyCoord
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=nside, order="nested")
    index = np.arange(hp.npix)
    lon, lat = hp.healpix_to_lonlat(index)
    blon, blat = hp.boundaries_lonlat(index, step=8)  # points along the (curved) edges, not only corners
    return float(SkyCoord(lon[:, None], lat[:, None]).separation(SkyCoord(blon, blat)).deg.max())


def tiles_in_cone(ra: float, dec: float, radius_deg: float, nside: int = NSIDE) -> np.ndarray:
    """Sorted NESTED indices of every HEALPix tile that overlaps the cone (a superset: a few may not)."""
    from astropy import units as u
    from astropy_healpix import HEALPix

    if not (np.isfinite(ra) and np.isfinite(dec) and -90 <= dec <= 90):
        raise ValueError(f"cone centre must be a finite RA and a Dec in [-90, 90] (degrees), got ({ra}, {dec})")
    if not (np.isfinite(radius_deg) and radius_deg > 0):
        raise ValueError(f"cone radius must be a positive number of degrees, got {radius_deg}")
    hp = HEALPix(nside=nside, order="nested")
    widened = min(radius_deg + 1.01 * _tile_radius_deg(nside), 180.0)
    return np.unique(hp.cone_search_lonlat(ra * u.deg, dec * u.deg, widened * u.deg)).astype(np.int64)


def angular_separation_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance in degrees (Vincenty's formula: accurate at all separations)."""
    from astropy.coordinates import angular_separation

    rad = np.radians
    return np.degrees(angular_separation(rad(ra1), rad(dec1), rad(ra2), rad(dec2)))


def select_parts(out, tiles: Iterable[int] | None = None,
                 cone: tuple[float, float, float] | None = None) -> list[Path]:
    """The catalogue's part files that can hold objects of ``tiles`` and/or of ``cone`` (RA, Dec, radius,
    degrees), chosen by folder name. Both None: every part. A selection matching no part gives []."""
    parts = list_parts(out)
    wanted: set[int] | None = None
    if tiles is not None:
        wanted = {int(t) for t in tiles}
    if cone is not None:
        in_cone = set(tiles_in_cone(*cone).tolist())
        wanted = in_cone if wanted is None else wanted & in_cone
    return parts if wanted is None else [p for p in parts if tile_of_part(p) in wanted]


def read_table(out, tiles: Iterable[int] | None = None, cone: tuple[float, float, float] | None = None,
               columns: Sequence[str] | None = None) -> pa.Table:
    """The catalogue's rows (all, or those of ``tiles`` and within ``cone``) as a pyarrow Table sorted by
    object_id, with the first part's schema metadata (model name and hash, modality, embed_dim).

    ``columns`` limits the columns read (ra and dec are read anyway when a cone is given).
    """
    import pyarrow.dataset as ds

    parts = select_parts(out, tiles, cone)
    # The schema (and model metadata) of a part that is read anyway; all parts share it (one model, one run).
    schema = ds.dataset(str((parts or list_parts(out))[0]), format="parquet").schema
    if columns is not None:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise InvalidDataError(f"no column(s) {missing}; the catalogue has {schema.names}", source=str(out),
                                   field=missing[0])
    wanted = list(columns) if columns is not None else schema.names
    read = wanted + [c for c in ("object_id", "ra", "dec") if c not in wanted and (cone or c == "object_id")]
    if not parts:
        table = schema.empty_table().select(read)
    else:
        table = ds.dataset([str(p) for p in parts], format="parquet", schema=schema).to_table(columns=read)
    if cone is not None:
        ra, dec, radius = cone
        near = angular_separation_deg(table.column("ra").to_numpy(), table.column("dec").to_numpy(), ra, dec)
        table = table.filter(pa.array(near <= radius))
    table = table.sort_by("object_id").select(wanted)
    return table.replace_schema_metadata(schema.metadata)
