"""Malformed inputs: each must raise an InvalidDataError naming the file (and the object/field where
there is one), or be masked and counted as documented in astroembed.data.records. The bad files are
built in tmp_path from copies of well-formed files or written from scratch. The SDSS, DESI and Legacy Surveys
copies are made both from synthetic files of the real layout (always) and from the real files (when
../shared/data is present)."""

import shutil

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from astroembed.data.readers import (InvalidDataError, ReaderWarning, read_any, read_catalog,
                                     read_desi_coadd, read_image_folder, read_legacysurvey_cutout,
                                     read_sdss_spectrum)


def raises_naming(path, *fragments):
    """pytest.raises(InvalidDataError) that also checks the message names the file and fragments."""

    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(InvalidDataError)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            suppressed = self._ctx.__exit__(*exc)
            message = str(self.info.value)
            assert str(path) in message, message
            for fragment in fragments:
                assert fragment in message, message
            return suppressed

    return _Check()


# ---------------------------------------------------------------- SDSS copies

def sdss_copy(sdss_file, tmp_path, edit=None, name="spec-0266-51602-0001.fits"):
    """Copy PRIMARY, COADD, SPECOBJ of the real file, let ``edit(hdus)`` change them, write."""
    with fits.open(sdss_file) as h:
        hdus = [h[0].copy(), h["COADD"].copy(), h["SPECOBJ"].copy()]
    if edit is not None:
        hdus = edit(hdus) or hdus
    path = tmp_path / name
    fits.HDUList(hdus).writeto(path)
    return path


def test_empty_file(tmp_path):
    path = tmp_path / "spec-empty.fits"
    path.write_bytes(b"")
    for reader in (read_sdss_spectrum, read_any):
        with raises_naming(path, "empty"):
            reader(path)


def _cut_position(path, where: str) -> int:
    """A byte offset inside the named part of the file, from its HDU layout (headers and data)."""
    with fits.open(path) as h:
        hdu, part = {"in-primary-header": (0, "header"), "in-COADD-data": (1, "data"),
                     "in-SPECOBJ-header": (2, "header"), "in-a-later-HDU": (3, "data")}[where]
        info = h.fileinfo(hdu)
    if part == "header":
        return info["hdrLoc"] + (info["datLoc"] - info["hdrLoc"]) // 2
    return info["datLoc"] + info["datSpan"] // 2


@pytest.mark.parametrize("where", ["in-primary-header", "in-COADD-data", "in-SPECOBJ-header", "in-a-later-HDU"])
def test_truncated_fits(sdss_any, tmp_path, where):
    # Even a cut in an HDU the reader does not use is reported: the file is damaged.
    path = tmp_path / "spec-truncated.fits"
    path.write_bytes(sdss_any.read_bytes()[:_cut_position(sdss_any, where)])
    with raises_naming(path, "truncated"):
        read_sdss_spectrum(path)


def test_fits_missing_coadd_hdu(sdss_any, tmp_path):
    path = sdss_copy(sdss_any, tmp_path, lambda h: [h[0], h[2]])
    with raises_naming(path, "field 'COADD'"):
        read_sdss_spectrum(path)


def test_fits_missing_column(sdss_any, tmp_path):
    def drop_ivar(h):
        cols = [c for c in h[1].columns if c.name != "ivar"]
        h[1] = fits.BinTableHDU.from_columns(cols, name="COADD")

    path = sdss_copy(sdss_any, tmp_path, drop_ivar)
    with raises_naming(path, "sdss-0266-51602-0001", "field 'ivar'"):
        read_sdss_spectrum(path)


def test_non_monotonic_loglam(sdss_any, tmp_path):
    def swap(h):
        loglam = h[1].data["loglam"]
        loglam[100], loglam[101] = loglam[101], loglam[100]

    path = sdss_copy(sdss_any, tmp_path, swap)
    with raises_naming(path, "sdss-0266-51602-0001", "spectrum_lambda", "strictly increasing"):
        read_sdss_spectrum(path)


def test_negative_ivar(sdss_any, tmp_path):
    def negate(h):
        h[1].data["ivar"][50] = -1.0

    path = sdss_copy(sdss_any, tmp_path, negate)
    with raises_naming(path, "sdss-0266-51602-0001", "spectrum_ivar", "negative"):
        read_sdss_spectrum(path)


def test_nan_flux_is_masked_and_counted(sdss_any, tmp_path):
    def poke(h):
        h[1].data["flux"][[10, 20, 30]] = np.nan

    path = sdss_copy(sdss_any, tmp_path, poke)
    with pytest.warns(ReaderWarning, match="masked 3 non-finite values") as record:
        (g,) = read_sdss_spectrum(path)
    assert str(path) in str(record[0].message)
    s = g.spectrum
    assert not s.mask[[10, 20, 30]].any() and np.all(s.flux[[10, 20, 30]] == 0)
    assert np.all(s.ivar[[10, 20, 30]] == 0) and np.all(np.isfinite(s.flux))


def test_specobj_with_two_rows(sdss_any, tmp_path):
    def double(h):
        h[2] = fits.BinTableHDU(np.concatenate([h[2].data, h[2].data]), name="SPECOBJ")

    path = sdss_copy(sdss_any, tmp_path, double)
    with raises_naming(path, "SPECOBJ"):
        read_sdss_spectrum(path)


# ---------------------------------------------------------------- DESI copies

def desi_copy(desi_file, tmp_path, edit, name="coadd-bad.fits"):
    with fits.open(desi_file) as h:
        hdus = [x.copy() for x in h]
    hdus = edit(hdus) or hdus
    path = tmp_path / name
    fits.HDUList(hdus).writeto(path)
    return path


def _hdu(hdus, name):
    return next(h for h in hdus if h.name == name)


def test_desi_nan_flux_masked_and_counted(desi_any, tmp_path):
    def poke(h):
        _hdu(h, "B_FLUX").data[0, 100:104] = np.nan   # B only: pixels lose all data
        _hdu(h, "R_FLUX").data[0, 5] = np.inf          # B/R overlap: B still covers it

    path = desi_copy(desi_any, tmp_path, poke)
    with pytest.warns(ReaderWarning, match="masked 5 non-finite flux/ivar values in 1 of 1"):
        (g,) = read_desi_coadd(path)
    s = g.spectrum
    assert not s.mask[100:104].any() and np.all(s.flux[100:104] == 0)
    overlap_pixel = int(np.argmin(np.abs(s.wavelength - 5764.0)))  # R pixel 5 = 5760 + 4 A
    assert s.mask[overlap_pixel] and np.isfinite(s.flux[overlap_pixel])


def test_desi_negative_ivar(desi_any, tmp_path):
    def negate(h):
        _hdu(h, "Z_IVAR").data[0, 7] = -3.0

    path = desi_copy(desi_any, tmp_path, negate)
    with raises_naming(path, "desi-39633345008634465", "field 'Z_IVAR'"):
        read_desi_coadd(path)


def test_desi_missing_fibermap(desi_any, tmp_path):
    path = desi_copy(desi_any, tmp_path, lambda h: [x for x in h if x.name != "FIBERMAP"])
    with raises_naming(path, "field 'FIBERMAP'"):
        read_desi_coadd(path)


def test_desi_arm_off_the_common_grid(desi_any, tmp_path):
    def shift(h):
        _hdu(h, "R_WAVELENGTH").data += 0.3

    path = desi_copy(desi_any, tmp_path, shift)
    with raises_naming(path, "R_WAVELENGTH", "common"):
        read_desi_coadd(path)


def test_desi_explicit_redrock_missing(desi_any, tmp_path):
    missing = tmp_path / "redrock-nothere.fits"
    with raises_naming(missing, "does not exist"):
        read_desi_coadd(desi_any, redrock=missing)


def test_redrock_missing_redshift_column(desi_dir, tmp_path):
    coadd = tmp_path / "coadd-x.fits"
    shutil.copy(desi_dir / "coadd-special-dark-27247.fits", coadd)
    with fits.open(desi_dir / "redrock-special-dark-27247.fits") as h:
        cols = [c for c in h["REDSHIFTS"].columns if c.name != "Z"]
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, name="REDSHIFTS")]
                     ).writeto(tmp_path / "redrock-x.fits")
    with raises_naming(tmp_path / "redrock-x.fits", "field 'Z'"):
        read_desi_coadd(coadd)  # the redrock file beside it is found and is broken


# ---------------------------------------------------------------- cutouts

def test_cutout_wrong_dimensions(legacy_any, tmp_path):
    header = fits.getheader(legacy_any)
    data = fits.getdata(legacy_any)
    path = tmp_path / "cut4d.fits"
    fits.PrimaryHDU(data[None], header).writeto(path)
    with raises_naming(path, "image_array", "(1, 3, 256, 256)"):
        read_legacysurvey_cutout(path)


def test_cutout_band_count_mismatch(legacy_any, tmp_path):
    header = fits.getheader(legacy_any)
    path = tmp_path / "cut2.fits"
    fits.PrimaryHDU(fits.getdata(legacy_any)[:2], header).writeto(path)  # header names g, r, z
    with raises_naming(path, "image_band"):
        read_legacysurvey_cutout(path)


def test_cutout_without_wcs(tmp_path):
    path = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.ones((3, 8, 8), np.float32)).writeto(path)
    with raises_naming(path, "field 'WCS'"):
        read_legacysurvey_cutout(path)


# ---------------------------------------------------------------- images

def test_corrupt_and_truncated_jpeg(gz2_dir, tmp_path):
    good = sorted((gz2_dir / "spirals").glob("*.jpg"))[0]
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(good, folder / good.name)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:2000])
    with raises_naming(truncated, "cannot decode"):
        read_image_folder(folder)
    truncated.unlink()
    garbage = folder / "garbage.png"
    garbage.write_bytes(b"this is not a PNG file at all" * 10)
    with raises_naming(garbage, "cannot decode"):
        read_image_folder(folder)


def test_empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("no images here")
    with raises_naming(folder, "no .jpg"):
        read_image_folder(folder)


def test_duplicate_image_stems(gz2_dir, tmp_path):
    good = sorted((gz2_dir / "spirals").glob("*.jpg"))[0]
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(good, tmp_path / sub / good.name)
    with raises_naming(tmp_path, "duplicated object ids", good.stem):
        read_image_folder(tmp_path)


def test_labels_csv_missing_id_column(gz2_dir, tmp_path):
    good = sorted((gz2_dir / "spirals").glob("*.jpg"))[0]
    shutil.copy(good, tmp_path / good.name)
    csv = tmp_path / "labels.csv"
    csv.write_text("GalaxyID,smooth\n1,0.5\n")
    with raises_naming(csv, "field 'objid'"):
        read_image_folder(tmp_path, labels_csv=csv, id_column="objid")


# ---------------------------------------------------------------- catalogues

def test_csv_missing_id_column(tmp_path):
    path = tmp_path / "cat.csv"
    pd.DataFrame({"u": [20.0], "g": [19.0]}).to_csv(path, index=False)
    with raises_naming(path, "field 'objID'"):
        read_catalog(path, id_column="objID")


def test_duplicated_ids_in_catalogue(tmp_path):
    path = tmp_path / "cat.csv"
    pd.DataFrame({"objid": [7, 8, 7], "r": [18.0, 19.0, 20.0]}).to_csv(path, index=False)
    with raises_naming(path, "duplicated object ids", "'7'"):
        read_catalog(path)


def test_text_header_does_not_match_rows(tmp_path):
    path = tmp_path / "cat.train"
    path.write_text("#zs u g\n0.1 20 19 18\n0.2 21 20 19\n")
    with raises_naming(path, "header names 3 columns but rows have 4"):
        read_catalog(path)
    records = read_catalog(path, column_names=["zs", "u", "g", "r"])  # the documented way out
    assert records[1].photometry.bands == ("u", "g", "r")


def test_non_numeric_photometry(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text("objid,u,g\n1,20.1,19.2\n2,bright,19.0\n")
    with raises_naming(path, "field 'u'", "'bright'"):
        read_catalog(path)


def test_coordinates_out_of_range(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text("objid,ra,dec,r\n1,10.0,5.0,18\n2,10.0,95.0,19\n")
    with raises_naming(path, "object 2", "field 'dec'"):
        read_catalog(path)


def test_header_only_catalogue(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text("objid,u,g\n")
    with raises_naming(path, "no rows"):
        read_catalog(path)


# ---------------------------------------------------------------- dispatch

def test_unknown_file_types(tmp_path):
    binary = tmp_path / "scene.npz"
    np.savez(binary, a=np.arange(10))
    with raises_naming(binary, "unsupported file type"):
        read_any(binary)
    missing = tmp_path / "nothing.fits"
    with raises_naming(missing, "does not exist"):
        read_any(missing)


def test_fits_with_unknown_layout(tmp_path):
    path = tmp_path / "odd.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones(5), name="STUFF")]).writeto(path)
    with raises_naming(path, "unsupported FITS layout"):
        read_any(path)
