"""Paths to the real files the reader tests use (skipped when ../shared/data is absent)."""

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
