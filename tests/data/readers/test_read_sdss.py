"""SDSS spec-lite reader on the 8 real plate-266 files, checked against the FITS columns read
directly with astropy and against what SDSS publishes about its spectrograph."""

import numpy as np
import pytest
from astropy.io import fits

from astroembed.data.readers import read_sdss_spectrum


def test_values_match_the_fits_columns(sdss_dir):
    files = sorted(sdss_dir.glob("spec-*.fits"))
    assert len(files) == 8
    for path in files:
        (g,) = read_sdss_spectrum(path)
        coadd, specobj = fits.getdata(path, "COADD"), fits.getdata(path, "SPECOBJ")
        plate, mjd, fiber = path.stem.split("-")[1:]
        assert g.object_id == f"sdss-{plate}-{mjd}-{fiber}"
        assert g.labels["redshift"] == pytest.approx(float(specobj["Z"][0]))
        assert g.labels["class"] == specobj["CLASS"][0].strip() == "GALAXY"
        assert g.labels["subclass"] == specobj["SUBCLASS"][0].strip()
        assert (g.ra, g.dec) == pytest.approx((specobj["PLUG_RA"][0], specobj["PLUG_DEC"][0]))
        s = g.spectrum
        np.testing.assert_allclose(s.wavelength, 10.0 ** coadd["loglam"].astype(np.float64), rtol=1e-6)
        assert np.all(np.diff(s.wavelength) > 0)
        good = (coadd["and_mask"] == 0) & (coadd["ivar"] > 0)
        np.testing.assert_array_equal(s.mask, good)
        np.testing.assert_array_equal(s.flux, coadd["flux"])
        np.testing.assert_array_equal(s.ivar, coadd["ivar"])


def test_redshifts_and_repeat_observations(sdss_dir):
    records = [read_sdss_spectrum(p)[0] for p in sorted(sdss_dir.glob("spec-*.fits"))]
    z = np.array([g.labels["redshift"] for g in records])
    assert z.min() == pytest.approx(0.021, abs=5e-4) and z.max() == pytest.approx(0.063, abs=5e-4)
    # 8 files, 6 galaxies: two galaxies were observed on both MJDs; their independent redshift
    # fits must agree (to ~30 km/s) at the same plug position.
    by_position = {}
    for g in records:
        by_position.setdefault((round(g.ra, 4), round(g.dec, 4)), []).append(g.labels["redshift"])
    assert len(by_position) == 6
    repeats = [v for v in by_position.values() if len(v) == 2]
    assert len(repeats) == 2
    for a, b in repeats:
        assert abs(a - b) < 1e-4


def test_line_spread_matches_sdss_resolution(sdss_file):
    (g,) = read_sdss_spectrum(sdss_file)
    s = g.spectrum
    # SDSS spectrograph resolution R = lambda / FWHM is 1500 at 3800 A rising to 2500 at 9000 A.
    resolution = s.wavelength / (2.3548 * s.lsf_sigma)
    assert 1300 < np.median(resolution[s.wavelength < 4500]) < 2200
    assert 1800 < np.median(resolution[s.wavelength > 8000]) < 2900
    wdisp = fits.getdata(sdss_file, "COADD")["wdisp"]
    i = len(s) // 2  # one pixel by hand: sigma = wdisp pixels of 1e-4 dex
    lam = s.wavelength[i]
    assert s.lsf_sigma[i] == pytest.approx(wdisp[i] * (lam * 10**0.5e-4 - lam * 10**-0.5e-4), rel=1e-4)
