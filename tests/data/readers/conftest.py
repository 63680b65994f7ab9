"""Paths to the real files the reader tests use (skipped when ../shared/data is absent), and synthetic
files of the same layout for the tests that only need a well-formed file to damage."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sdss_dir(shared_data: Path) -> Path:
    return shared_data / "spectra" / "sdss"


@pytest.fixture(scope="session")
def desi_dir(shared_data: Path) -> Path:
    return shared_data / "spectra" / "desi"


@pytest.fixture(scope="session")
def sdss_file(sdss_dir: Path) -> Path:
    return sdss_dir / "spec-0266-51602-0001.fits"


@pytest.fixture(scope="session")
def desi_file(desi_dir: Path) -> Path:
    return desi_dir / "coadd-4-80613-thru20210324.fits"


@pytest.fixture(scope="session")
def legacy_file(shared_data: Path) -> Path:
    return shared_data / "cutouts" / "legacysurvey_dr9_grz_256.fits"


@pytest.fixture(scope="session")
def gz2_dir(shared_data: Path) -> Path:
    return shared_data / "galaxy_zoo2" / "train"


# Synthetic stand-ins with the real files' layout, so the malformed-file tests (which edit copies) run
# without ../shared/data. Fixtures ending in _any give each such test both: the synthetic file always,
# the real one when present.

def write_sdss_spec_lite(path: Path, n_pixels: int = 3000) -> Path:
    """An SDSS DR spec-lite file: PRIMARY, COADD (loglam grid of 1e-4 dex), SPECOBJ (one row), SPZLINE."""
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(0)
    loglam = (3.5798 + 1e-4 * np.arange(n_pixels)).astype(np.float32)
    coadd = fits.BinTableHDU.from_columns([
        fits.Column("flux", "E", array=(5 + rng.normal(0, 1, n_pixels)).astype(np.float32)),
        fits.Column("loglam", "E", array=loglam),
        fits.Column("ivar", "E", array=np.full(n_pixels, 1.0, np.float32)),
        fits.Column("and_mask", "J", array=np.zeros(n_pixels, np.int32)),
        fits.Column("or_mask", "J", array=np.zeros(n_pixels, np.int32)),
        fits.Column("wdisp", "E", array=np.full(n_pixels, 1.1, np.float32)),
        fits.Column("sky", "E", array=np.ones(n_pixels, np.float32)),
        fits.Column("model", "E", array=np.full(n_pixels, 5.0, np.float32))], name="COADD")
    specobj = fits.BinTableHDU.from_columns([
        fits.Column("PLATE", "J", array=[266]), fits.Column("MJD", "J", array=[51602]),
        fits.Column("FIBERID", "J", array=[1]), fits.Column("PLUG_RA", "D", array=[146.71421]),
        fits.Column("PLUG_DEC", "D", array=[-1.0413043]), fits.Column("Z", "E", array=[0.0213]),
        fits.Column("Z_ERR", "E", array=[1e-5]), fits.Column("ZWARNING", "J", array=[0]),
        fits.Column("CLASS", "6A", array=["GALAXY"]), fits.Column("SUBCLASS", "21A", array=[""])],
        name="SPECOBJ")
    spzline = fits.BinTableHDU.from_columns([
        fits.Column("LINENAME", "13A", array=["H_alpha", "[O_III] 5007"]),
        fits.Column("LINEWAVE", "D", array=[6564.61, 5008.24])], name="SPZLINE")
    primary = fits.PrimaryHDU()
    primary.header["PLATEID"], primary.header["MJD"], primary.header["FIBERID"] = 266, 51602, 1
    fits.HDUList([primary, coadd, specobj, spzline]).writeto(path)
    return path


def write_legacy_cutout(path: Path, size: int = 256) -> Path:
    """A Legacy Surveys DR9 g,r,z cutout: (3, size, size) float32 nanomaggies with a TAN WCS."""
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(1)
    header = fits.Header()
    header.update({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": 2.0,
                   "CRPIX1": size / 2 + 0.5, "CRPIX2": size / 2 + 0.5, "CD1_1": -0.262 / 3600, "CD1_2": 0.0,
                   "CD2_1": 0.0, "CD2_2": 0.262 / 3600, "BAND0": "g", "BAND1": "r", "BAND2": "z"})
    data = rng.normal(0, 0.01, (3, size, size)).astype(np.float32)
    fits.PrimaryHDU(data, header).writeto(path)
    return path


def _real_or_synthetic(request, tmp_path_factory, real_fixture: str, write, name: str) -> Path:
    """The real file of ../shared/data (its fixture skips when absent) or one written in its layout."""
    if request.param == "real":
        return request.getfixturevalue(real_fixture)
    return write(tmp_path_factory.mktemp(real_fixture) / name)


@pytest.fixture(scope="session", params=["synthetic", "real"])
def sdss_any(request, tmp_path_factory) -> Path:
    return _real_or_synthetic(request, tmp_path_factory, "sdss_file", write_sdss_spec_lite, "spec-0266-51602-0001.fits")


@pytest.fixture(scope="session", params=["synthetic", "real"])
def legacy_any(request, tmp_path_factory) -> Path:
    return _real_or_synthetic(request, tmp_path_factory, "legacy_file", write_legacy_cutout,
                              "legacysurvey_dr9_grz_256.fits")


def write_desi_coadd(path: Path, targetid: int = 39633345008634465) -> Path:
    """A DESI coadd of one target: FIBERMAP and B, R, Z arms on the common 0.8 A grid (overlapping at
    5760-5800 A and 7520-7620 A), each with WAVELENGTH, FLUX, IVAR, MASK and an 11-diagonal RESOLUTION."""
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(2)
    fibermap = fits.BinTableHDU.from_columns([
        fits.Column("TARGETID", "K", array=[targetid]), fits.Column("TARGET_RA", "D", array=[150.1]),
        fits.Column("TARGET_DEC", "D", array=[2.2]), fits.Column("OBJTYPE", "3A", array=["TGT"]),
        *[fits.Column(f"FLUX_{b}", "E", array=[10.0]) for b in ("G", "R", "Z")],
        *[fits.Column(f"FLUX_IVAR_{b}", "E", array=[4.0]) for b in ("G", "R", "Z")]], name="FIBERMAP")
    hdus = [fits.PrimaryHDU(), fibermap]
    offsets = np.arange(5, -6, -1)
    kernel = np.exp(-0.5 * (offsets / 1.2) ** 2)
    for arm, (start, stop) in {"B": (3600.0, 5800.0), "R": (5760.0, 7620.0), "Z": (7520.0, 9824.0)}.items():
        wave = start + 0.8 * np.arange(int(round((stop - start) / 0.8)) + 1)
        n = wave.size
        resolution = np.broadcast_to((kernel / kernel.sum())[None, :, None], (1, 11, n)).astype(np.float32)
        hdus += [fits.ImageHDU(wave, name=f"{arm}_WAVELENGTH"),
                 fits.ImageHDU((3 + rng.normal(0, 0.5, (1, n))).astype(np.float32), name=f"{arm}_FLUX"),
                 fits.ImageHDU(np.full((1, n), 4.0, np.float32), name=f"{arm}_IVAR"),
                 fits.ImageHDU(np.zeros((1, n), np.int32), name=f"{arm}_MASK"),
                 fits.ImageHDU(np.ascontiguousarray(resolution), name=f"{arm}_RESOLUTION")]
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.fixture(scope="session", params=["synthetic", "real"])
def desi_any(request, tmp_path_factory) -> Path:
    return _real_or_synthetic(request, tmp_path_factory, "desi_file", write_desi_coadd,
                              "coadd-4-80613-thru20210324.fits")
