"""Legacy Surveys cutout reader on the real DR9 cutout, plus the HSC/HST pair of the same patch as an
independent check of the WCS centre and pixel scale."""

import numpy as np
import pytest
from astropy.io import fits

from astroembed.data.readers import read_legacysurvey_cutout


def test_legacy_cutout(legacy_file):
    (g,) = read_legacysurvey_cutout(legacy_file)
    assert g.object_id == "legacysurvey_dr9_grz_256"
    assert (g.ra, g.dec) == pytest.approx((357.9087, -54.8817), abs=1e-6)
    img = g.image
    assert img.bands == ("g", "r", "z") and img.shape == (3, 256, 256)
    assert img.pixel_scale == pytest.approx(0.262, rel=1e-6)
    np.testing.assert_array_equal(img.flux, fits.getdata(legacy_file))
    assert img.ivar is None and img.mask.all()


def test_two_instruments_same_patch_agree(shared_data):
    folder = shared_data / "cutouts" / "hsc_hst_matched"
    (hsc,) = read_legacysurvey_cutout(folder / "Cut_HSC.fits", bands="grizy")
    (hst,) = read_legacysurvey_cutout(folder / "Cut_HST.fits")  # a 2-D single-band image
    assert hsc.image.shape == (5, 50, 50) and hst.image.shape == (1, 250, 250)
    assert hst.image.bands == ("unknown",)
    assert hsc.image.pixel_scale == pytest.approx(0.168, rel=1e-3)
    assert hst.image.pixel_scale == pytest.approx(0.03, rel=1e-3)
    # Both cutouts span the same 8.4" field, so their centres coincide to a fraction of a pixel.
    sep = np.hypot((hsc.ra - hst.ra) * np.cos(np.radians(hst.dec)), hsc.dec - hst.dec) * 3600
    assert sep < 0.1


def test_object_id_from_header_and_band_keywords(legacy_file, tmp_path):
    with fits.open(legacy_file) as h:
        header = h[0].header.copy()
        data = h[0].data
    header["OBJID"] = "LS-1234"
    for i, b in enumerate(("g", "r", "i")):
        header[f"BAND{i}"] = b
    path = tmp_path / "cut.fits"
    fits.PrimaryHDU(data, header).writeto(path)
    (g,) = read_legacysurvey_cutout(path)
    assert g.object_id == "LS-1234" and g.image.bands == ("g", "r", "i")
