"""read_any picks the right reader for each real file."""

import pytest

from astroembed.data.readers import InvalidDataError, read_any


@pytest.mark.filterwarnings("ignore::astroembed.data.readers.ReaderWarning")  # sentinel mags in the CSV
def test_dispatch_on_real_files(shared_data):
    cases = {
        "spectra/sdss/spec-0266-51602-0162.fits": ("sdss-0266-51602-0162", ("spectrum",)),
        "spectra/desi/coadd-special-dark-27247.fits": ("desi-39089837499744649", ("spectrum", "photometry")),
        "cutouts/legacysurvey_dr9_grz_256.fits": ("legacysurvey_dr9_grz_256", ("image",)),
        "catalogs/mlz/SDSS_MGS.train": ("SDSS_MGS-0", ("photometry",)),
        "catalogs/sdss_star_galaxy_qso_1000.csv": ("sdss_star_galaxy_qso_1000-0", ("photometry",)),
        "galaxy_zoo2/train/spirals/101756.jpg": ("101756", ("image",)),
    }
    for rel, (first_id, modalities) in cases.items():
        records = read_any(shared_data / rel)
        assert records[0].object_id == first_id, rel
        assert records[0].modalities == modalities, rel


def test_redrock_alone_is_refused(shared_data):
    path = shared_data / "spectra/desi/redrock-special-dark-27247.fits"
    with pytest.raises(InvalidDataError, match="redrock file holds redshifts only") as err:
        read_any(path)
    assert str(path) in str(err.value)
