"""DESI coadd reader: arms merged on one grid, resolution-matrix line spread, redrock redshifts,
non-target fibres skipped. References are computed here independently (dict keyed by wavelength,
scipy's sparse matrix for the resolution convention)."""

import numpy as np
import pytest
import scipy.sparse
from astropy.io import fits

from astroembed.data.readers import ReaderWarning, read_desi_coadd
from astroembed.data.readers.desi import resolution_sigma


def test_merged_grid_and_redshifts(desi_dir):
    expected = {"coadd-4-80613-thru20210324.fits": (39633345008634465, 0.3687),
                "coadd-special-dark-27247.fits": (39089837499744649, 0.0073)}
    for name, (targetid, z) in expected.items():
        (g,) = read_desi_coadd(desi_dir / name)
        assert g.object_id == f"desi-{targetid}"
        assert g.labels["redshift"] == pytest.approx(z, abs=1e-4)
        assert g.labels["zwarn"] == 0 and g.labels["spectype"] == "GALAXY"
        w = g.spectrum.wavelength
        assert len(w) == 7781 and w[0] == pytest.approx(3600.0) and w[-1] == pytest.approx(9824.0)
        assert np.all(np.diff(w) > 0)
        fm = fits.getdata(desi_dir / name, "FIBERMAP")
        assert (g.ra, g.dec) == pytest.approx((fm["TARGET_RA"][0], fm["TARGET_DEC"][0]))
        assert g.photometry.bands == ("g", "r", "z", "W1", "W2")
        np.testing.assert_array_equal(g.photometry.flux, [fm[f"FLUX_{b}"][0] for b in ("G", "R", "Z", "W1", "W2")])


def test_merge_matches_an_independent_coadd(desi_file):
    (g,) = read_desi_coadd(desi_file)
    # Reference: accumulate ivar-weighted sums per wavelength (rounded to 0.01 A) in a dict.
    num, den = {}, {}
    with fits.open(desi_file) as h:
        for arm in "BRZ":
            wave = h[f"{arm}_WAVELENGTH"].data
            flux, ivar, mask = (h[f"{arm}_{p}"].data[0] for p in ("FLUX", "IVAR", "MASK"))
            for w, f, iv, m in zip(wave, flux, ivar, mask):
                key = round(float(w), 2)
                weight = float(iv) * (m == 0)
                num[key] = num.get(key, 0.0) + weight * float(f)
                den[key] = den.get(key, 0.0) + weight
    keys = sorted(num)
    assert len(keys) == len(g.spectrum)
    ref_ivar = np.array([den[k] for k in keys])
    ref_flux = np.array([num[k] / den[k] if den[k] > 0 else 0.0 for k in keys])
    np.testing.assert_allclose(g.spectrum.ivar, ref_ivar, rtol=1e-5)
    np.testing.assert_allclose(g.spectrum.flux, ref_flux, rtol=1e-4, atol=1e-6 * np.abs(ref_flux).max())
    np.testing.assert_array_equal(g.spectrum.mask, ref_ivar > 0)
    # The B/R overlap really is combined: there the ivar is the sum of two arms.
    overlap = (g.spectrum.wavelength > 5770) & (g.spectrum.wavelength < 5790)
    with fits.open(desi_file) as h:
        b_ivar = h["B_IVAR"].data[0][(h["B_WAVELENGTH"].data > 5770) & (h["B_WAVELENGTH"].data < 5790)]
    assert np.all(g.spectrum.ivar[overlap] > b_ivar)


def test_line_spread_from_resolution_matrix(desi_file):
    (g,) = read_desi_coadd(desi_file)
    with fits.open(desi_file) as h:
        rdata = h["B_RESOLUTION"].data[0].astype(np.float64)
    ndiag, nwave = rdata.shape
    offsets = np.arange(ndiag // 2, -(ndiag // 2) - 1, -1)  # desispec's diagonal order
    dense = scipy.sparse.dia_matrix((rdata, offsets), shape=(nwave, nwave)).toarray()
    j = 1000  # a pixel covered by the B arm only
    column = dense[:, j]
    rows = np.arange(nwave) - j
    mean = (column * rows).sum() / column.sum()
    sigma_pix = np.sqrt((column * rows**2).sum() / column.sum() - mean**2)
    assert g.spectrum.lsf_sigma[j] == pytest.approx(sigma_pix * 0.8, rel=1e-4)
    assert resolution_sigma(rdata, 0.8)[j] == pytest.approx(sigma_pix * 0.8, rel=1e-6)
    # DESI's resolving power is 2000-5500 across 3600-9800 A.
    power = g.spectrum.wavelength / (2.3548 * g.spectrum.lsf_sigma)
    assert 1500 < np.nanpercentile(power, 2) and np.nanpercentile(power, 98) < 6500


def test_edr_non_targets_are_skipped_and_reported(desi_dir):
    kept = {}
    for name, n_skipped in (("coadd-5-169-thru20210419.fits", 4), ("coadd-sv3-dark-26065.fits", 3)):
        with pytest.warns(ReaderWarning, match=f"skipped {n_skipped} of 5 fibres"):
            records = read_desi_coadd(desi_dir / "edr" / name)
        kept[name] = [g.object_id for g in records]
        for g in records:
            assert g.labels == {}  # no redrock file beside these coadds
            assert g.spectrum.mask.mean() > 0.99
    assert kept == {"coadd-5-169-thru20210419.fits": ["desi-39633300968442591"],
                    "coadd-sv3-dark-26065.fits": ["desi-39627866878511337", "desi-39627866878514741"]}


def test_explicit_redrock_file_is_matched_by_targetid(desi_dir, tmp_path):
    # The wrong redrock file shares no TARGETID: the reader says so instead of mislabelling.
    with pytest.warns(ReaderWarning, match="1 targets have no row"):
        (g,) = read_desi_coadd(desi_dir / "coadd-4-80613-thru20210324.fits",
                               redrock=desi_dir / "redrock-special-dark-27247.fits")
    assert "redshift" not in g.labels
