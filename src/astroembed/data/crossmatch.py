"""Sky cross-match of two surveys, tile by tile, without losing pairs that straddle a tile border.

The Multimodal Universe reference cross-match joins the two catalogues one HEALPix tile at a time, so a
galaxy just inside tile 1 whose counterpart was catalogued just inside tile 2 is never matched. Here each
tile of the first survey is matched against the same tile *and its neighbours* in the second, which is
exact for any radius smaller than a tile (3.7 deg at nside 16), while memory stays one neighbourhood.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from .healpix import NSIDE, UNKNOWN_TILE, neighbouring_tiles
from .records import Galaxy

__all__ = ["CrossMatch", "crossmatch", "join_matched", "join_surveys"]

# Half the smallest tile side at nside 16, so that "tile plus neighbours" always contains every partner.
MAX_RADIUS_ARCSEC = 0.5 * 3.66 * 3600.0


class Positions(Protocol):
    object_ids: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    healpix: np.ndarray


@dataclass
class CrossMatch:
    """Matched pairs: row i pairs object index_a[i] of the first survey with index_b[i] of the second."""

    index_a: np.ndarray
    index_b: np.ndarray
    id_a: np.ndarray
    id_b: np.ndarray
    separation_arcsec: np.ndarray

    def __len__(self) -> int:
        return len(self.index_a)


def crossmatch(a: Positions, b: Positions, radius_arcsec: float = 1.0) -> CrossMatch:
    """For each object of ``a``, its nearest object of ``b`` within ``radius_arcsec`` (if any).

    ``a`` and ``b`` are anything with ``object_ids, ra, dec, healpix`` arrays, e.g. two
    :class:`~astroembed.data.mmu.MMUSurvey`. Objects without a position never match.
    """
    if not 0 < radius_arcsec <= MAX_RADIUS_ARCSEC:
        raise ValueError(f"radius_arcsec must be in (0, {MAX_RADIUS_ARCSEC:.0f}], got {radius_arcsec}")
    b_by_tile: dict[int, np.ndarray] = {}
    b_tiles = np.asarray(b.healpix)
    order = np.argsort(b_tiles, kind="stable")
    uniq, starts = np.unique(b_tiles[order], return_index=True)
    for tile, chunk in zip(uniq, np.split(order, starts[1:])):
        b_by_tile[int(tile)] = chunk

    out_a, out_b, out_sep = [], [], []
    a_tiles = np.asarray(a.healpix)
    for tile in np.unique(a_tiles):
        if tile == UNKNOWN_TILE:
            continue
        ia = np.flatnonzero(a_tiles == tile)
        candidates = [b_by_tile[t] for t in neighbouring_tiles(int(tile), NSIDE) if t in b_by_tile]
        if not candidates:
            continue
        ib = np.concatenate(candidates)
        ca = SkyCoord(np.asarray(a.ra)[ia] * u.deg, np.asarray(a.dec)[ia] * u.deg)
        cb = SkyCoord(np.asarray(b.ra)[ib] * u.deg, np.asarray(b.dec)[ib] * u.deg)
        nearest, sep, _ = ca.match_to_catalog_sky(cb)
        sep = sep.to_value(u.arcsec)
        ok = sep <= radius_arcsec
        out_a.append(ia[ok])
        out_b.append(ib[nearest[ok]])
        out_sep.append(sep[ok])
    index_a = np.concatenate(out_a) if out_a else np.array([], np.int64)
    index_b = np.concatenate(out_b) if out_b else np.array([], np.int64)
    order = np.argsort(index_a, kind="stable")
    index_a, index_b = index_a[order], index_b[order]
    return CrossMatch(index_a=index_a, index_b=index_b,
                      id_a=np.asarray(a.object_ids)[index_a], id_b=np.asarray(b.object_ids)[index_b],
                      separation_arcsec=(np.concatenate(out_sep) if out_sep else np.array([]))[order])


def join_matched(a, b, match: CrossMatch) -> Iterator[Galaxy]:
    """Galaxies that combine the modalities of matched pairs (e.g. images of ``a`` with spectra of ``b``).

    The id and position are ``a``'s; a modality present in both is taken from ``a``; labels of ``b``
    that clash with ``a``'s are kept with the prefix ``b_``.
    """
    for ia, ib in zip(match.index_a, match.index_b):
        ga, gb = a.galaxy(int(ia)), b.galaxy(int(ib))
        for modality in ("image", "spectrum", "photometry"):
            if getattr(ga, modality) is None:
                setattr(ga, modality, getattr(gb, modality))
        for key, value in gb.labels.items():
            ga.labels[key if key not in ga.labels else f"b_{key}"] = value
        ga.labels["match_id"] = gb.object_id
        yield ga


def join_surveys(a, partners: Sequence[tuple[str, object]], radius_arcsec: float = 1.0) -> Iterator[Galaxy]:
    """Multimodal records: each object of ``a`` with the modalities of its counterparts in several surveys.

    Built for the Multimodal Universe, whose parent samples hold one modality each (Legacy Surveys images,
    DESI spectra, ...). ``partners`` is a sequence of ``(name, survey)``; each is cross-matched with ``a``
    (:func:`crossmatch`, so pairs across tile borders are kept). A modality is filled from the first source
    that has it, in the order ``a``, then ``partners``: nothing is overwritten. Every object of ``a`` is
    yielded, matched or not. The partner's id goes to the label ``<name>_id``, its separation to
    ``<name>_separation_arcsec``, the source of each modality to ``<modality>_source``, and a partner's labels
    to ``<name>_<label>`` (MMU parent samples share catalogue names such as ``Z`` and ``EBV``).
    """
    names = [name for name, _ in partners]
    if len(set(names)) != len(names):
        raise ValueError(f"partner names must be unique, got {names}")
    matches = []
    for _, survey in partners:
        m = crossmatch(a, survey, radius_arcsec)
        matches.append({int(i): (int(j), float(sep)) for i, j, sep in zip(m.index_a, m.index_b,
                                                                       m.separation_arcsec)})
    for index in range(len(a.object_ids)):
        g = a.galaxy(index)
        for modality in g.modalities:
            g.labels[f"{modality}_source"] = "self"
        for (name, survey), found in zip(partners, matches):
            if index not in found:
                continue
            j, separation = found[index]
            partner = survey.galaxy(j)
            for modality in ("image", "spectrum", "photometry"):
                if getattr(g, modality) is None and getattr(partner, modality) is not None:
                    setattr(g, modality, getattr(partner, modality))
                    g.labels[f"{modality}_source"] = name
            g.labels[f"{name}_id"] = partner.object_id
            g.labels[f"{name}_separation_arcsec"] = separation
            for key, value in partner.labels.items():
                g.labels[f"{name}_{key}"] = value
        yield g
