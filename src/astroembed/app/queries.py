"""The home page's search box: an object id, or a sky position in degrees or sexagesimal, or a cone.

Accepted forms (what an astronomer types):

- an object id of the catalogue, exactly;
- ``RA Dec`` in decimal degrees (``150.1 2.2`` or ``150.1, 2.2``), or with a radius in arcsec as a
  third number (``150.1 2.2 30``): a cone search;
- sexagesimal, RA in hours (``10:00:24.0 +02:12:00`` or ``10h00m24s +2d12m00s``), parsed by astropy.

A position without a radius opens the object within ``POSITION_MATCH_ARCSEC`` of it, when there is
one; otherwise it lists the objects within ``DEFAULT_CONE_ARCSEC``.
"""

from __future__ import annotations

import re

from ..data.records import InvalidDataError
from ..search.catalog_search import POSITION_MATCH_ARCSEC
from .explorer import Explorer, NotFoundError

__all__ = ["resolve", "parse_position", "DEFAULT_CONE_ARCSEC", "MAX_QUERY_CHARS"]

DEFAULT_CONE_ARCSEC = 60.0
MAX_QUERY_CHARS = 200
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DECIMAL = re.compile(rf"^\s*({_NUMBER})\s*[,\s]\s*({_NUMBER})(?:\s*[,\s]\s*({_NUMBER}))?\s*$")


def parse_position(text: str) -> tuple[float, float, float | None]:
    """(ra, dec) degrees and an optional radius (arcsec) from decimal or sexagesimal text."""
    match = _DECIMAL.match(text)
    if match:
        ra, dec = float(match.group(1)), float(match.group(2))
        radius = float(match.group(3)) if match.group(3) is not None else None
    else:
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        try:
            coord = SkyCoord(text, unit=(u.hourangle, u.deg))
        except (ValueError, TypeError) as exc:
            raise InvalidDataError(f"not an object id of this catalogue, nor a position ({exc})",
                                   field="q") from None
        ra, dec, radius = float(coord.ra.deg), float(coord.dec.deg), None
    if not (0 <= ra < 360 and -90 <= dec <= 90):
        raise InvalidDataError(f"position out of range: RA {ra} must be in [0, 360), Dec {dec} in [-90, 90]",
                               field="q")
    return ra, dec, radius


def resolve(explorer: Explorer, text: str) -> dict:
    """{"kind": "object", "object_id"} or {"kind": "cone", "ra", "dec", "radius_arcsec", "objects"}."""
    text = (text or "").strip()
    if not text:
        raise InvalidDataError("the search box is empty", field="q")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidDataError(f"query longer than {MAX_QUERY_CHARS} characters", field="q")
    try:
        explorer.row_of(text)
        return {"kind": "object", "object_id": text}
    except NotFoundError:
        pass
    if not re.search(r"\d", text):
        raise NotFoundError("no object with this id in the catalogue", object_id=text, field="q")
    try:
        ra, dec, radius = parse_position(text)
    except InvalidDataError:
        raise NotFoundError("no object with this id in the catalogue, and the text is not a position "
                            "(RA Dec in degrees, or sexagesimal 10:00:24 +02:12:00)", object_id=text,
                            field="q") from None
    if radius is None:
        nearest = explorer.cone(ra, dec, POSITION_MATCH_ARCSEC, limit=1)
        if nearest:
            return {"kind": "object", "object_id": nearest[0]["object_id"], "ra": ra, "dec": dec}
        radius = DEFAULT_CONE_ARCSEC
    return {"kind": "cone", "ra": ra, "dec": dec, "radius_arcsec": radius,
            "objects": explorer.cone(ra, dec, radius)}
