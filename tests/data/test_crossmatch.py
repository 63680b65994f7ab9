"""Cross-match by sky position, including pairs that straddle a HEALPix tile border."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from astroembed.data.crossmatch import crossmatch, join_matched
from astroembed.data.healpix import healpix_index
from astroembed.data.mmu import MMUSurvey, write_survey
from astroembed.data.records import Galaxy, Image, Spectrum


class Positions:
    def __init__(self, ra, dec):
        self.ra, self.dec = np.asarray(ra, float), np.asarray(dec, float)
        self.object_ids = np.array([f"o{i}" for i in range(len(self.ra))])
        self.healpix = healpix_index(self.ra, self.dec)


def border_catalogues(n=400, seed=0, offset_arcsec=0.6):
    """n/2 pairs straddling a tile border (a's object on one side, b's counterpart 0.6" away on the other)
    and n/2 pairs inside one tile. Border crossings are found by bisection along a random direction."""
    rng = np.random.default_rng(seed)
    ra, dec = rng.uniform(0, 360, n), rng.uniform(-60, 60, n)
    angle = rng.uniform(0, 2 * np.pi, n) * u.rad
    start = SkyCoord(ra * u.deg, dec * u.deg)
    tile0 = healpix_index(ra, dec)
    lo, hi = np.zeros(n), np.full(n, 10.0)  # degrees along the direction; 10 deg leaves any tile
    for _ in range(40):
        mid = (lo + hi) / 2
        p = start.directional_offset_by(angle, mid * u.deg)
        inside = healpix_index(p.ra.deg, p.dec.deg) == tile0
        lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
    half = offset_arcsec / 2 / 3600
    border = (lo + hi) / 2
    straddle = np.arange(n) < n // 2
    centre = np.where(straddle, border, border / 2)  # non-straddling pairs sit well inside the tile
    a = start.directional_offset_by(angle, (centre - half) * u.deg)
    b = start.directional_offset_by(angle, (centre + half) * u.deg)
    return Positions(a.ra.deg, a.dec.deg), Positions(b.ra.deg, b.dec.deg), straddle


def test_pairs_across_tile_borders_are_not_lost():
    a, b, straddle = border_catalogues()
    assert np.array_equal(a.healpix != b.healpix, straddle)
    match = crossmatch(a, b, radius_arcsec=1.0)
    # Reference: a brute-force astropy match over the whole sky, no tiling at all.
    ref_idx, ref_sep, _ = SkyCoord(a.ra * u.deg, a.dec * u.deg).match_to_catalog_sky(
        SkyCoord(b.ra * u.deg, b.dec * u.deg))
    ref_ok = ref_sep.arcsec <= 1.0
    assert len(match) == ref_ok.sum() == len(a.ra)
    np.testing.assert_array_equal(match.index_a, np.flatnonzero(ref_ok))
    np.testing.assert_array_equal(match.index_b, ref_idx[ref_ok])
    np.testing.assert_allclose(match.separation_arcsec, 0.6, atol=1e-6)


def test_per_tile_matching_would_have_lost_the_straddling_pairs():
    """Documents the reference implementation's bug that crossmatch() fixes."""
    a, b, straddle = border_catalogues()
    found = 0
    for tile in np.unique(a.healpix):
        ia, ib = np.flatnonzero(a.healpix == tile), np.flatnonzero(b.healpix == tile)
        if len(ib) == 0:
            continue
        _, sep, _ = SkyCoord(a.ra[ia] * u.deg, a.dec[ia] * u.deg).match_to_catalog_sky(
            SkyCoord(b.ra[ib] * u.deg, b.dec[ib] * u.deg))
        found += int((sep.arcsec <= 1).sum())
    assert found == (~straddle).sum() < len(crossmatch(a, b))


def test_radius_excludes_far_pairs_and_unknown_positions_never_match():
    a = Positions([10.0, 20.0, np.nan], [0.0, 0.0, np.nan])
    b = Positions([10.0 + 0.5 / 3600, 20.0 + 3 / 3600, 30.0], [0.0, 0.0, 0.0])
    match = crossmatch(a, b, radius_arcsec=1.0)
    assert match.id_a.tolist() == ["o0"] and match.id_b.tolist() == ["o0"]
    assert len(crossmatch(a, b, radius_arcsec=5.0)) == 2
    with pytest.raises(ValueError, match="radius"):
        crossmatch(a, b, radius_arcsec=-1)


def test_join_matched_combines_image_and_spectrum_surveys(tmp_path):
    rng = np.random.default_rng(1)
    images, spectra = [], []
    for i in range(12):
        ra, dec = float(rng.uniform(0, 360)), float(rng.uniform(-30, 30))
        images.append(Galaxy(f"img{i}", ra, dec, image=Image(rng.normal(size=(3, 4, 4)), ("g", "r", "z")),
                             labels={"redshift": 0.1}))
        spectra.append(Galaxy(f"spec{i}", ra + 0.3 / 3600, dec,
                              spectrum=Spectrum(rng.normal(size=10), np.arange(10.0) + 4000),
                              labels={"redshift": 0.2, "class": "GALAXY"}))
    write_survey(images, tmp_path, "img")
    write_survey(spectra, tmp_path, "spec")
    a, b = MMUSurvey(tmp_path / "img"), MMUSurvey(tmp_path / "spec")
    match = crossmatch(a, b)
    assert len(match) == 12
    joined = {g.object_id: g for g in join_matched(a, b, match)}
    g = joined["img3"]
    assert g.image is not None and g.spectrum is not None
    assert g.labels == {"redshift": 0.1, "b_redshift": 0.2, "class": "GALAXY", "match_id": "spec3"}
    np.testing.assert_array_equal(g.spectrum.flux, spectra[3].spectrum.flux.astype(np.float32))
