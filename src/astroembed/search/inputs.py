"""Checks of what callers hand the search layer: k, object ids, sky positions. Errors name the object."""

from __future__ import annotations

import numpy as np

from ..data.records import InvalidDataError

__all__ = ["as_ids", "as_positions", "check_k", "row_label"]


def row_label(ids: np.ndarray | None, row: int) -> str:
    """How an error names a row: its object id, or its row number for unnamed queries."""
    return str(ids[row]) if ids is not None else f"<row {row}>"


def check_k(k: int) -> int:
    """``k`` (neighbours per query) as an int >= 1."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def as_ids(ids, n: int) -> np.ndarray:
    """One object id per embedding row, as strings."""
    if ids is None:
        raise ValueError("ids are required: one object id per embedding row")
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) != n:
        raise ValueError(f"ids must be 1-D with one id per embedding row ({n}), got shape {ids.shape}")
    return ids.astype(str)


def as_positions(ra, dec, ids, n: int | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(ra, dec) as float64 degrees, both or neither, finite and in range; errors name the object."""
    if ra is None and dec is None:
        return None, None
    if ra is None or dec is None:
        raise ValueError("give both ra and dec, or neither")
    n = len(ids) if n is None else n
    ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
    for name, arr in (("ra", ra), ("dec", dec)):
        if arr.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(ra) | ~np.isfinite(dec) | (np.abs(dec) > 90))
    if bad.size:
        raise InvalidDataError(f"{bad.size} position(s) non-finite or |dec| > 90 "
                               f"(ra={ra[bad[0]]}, dec={dec[bad[0]]})", object_id=row_label(ids, bad[0]),
                               field="ra/dec")
    return ra, dec
