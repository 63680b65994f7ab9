"""file_kind decides what a file holds from its content, whatever its name, and says why it refuses one."""

import gzip
import shutil

import h5py
import numpy as np
import pytest

from astroembed.data.readers.detect import Unsupported, file_kind, sniff


@pytest.mark.parametrize("relative, new_name, kind", [
    ("spectra/sdss/spec-0266-51602-0001.fits", "spectrum.dat", "sdss"),
    ("spectra/desi/coadd-4-80613-thru20210324.fits", "coadd", "desi"),
    ("cutouts/legacysurvey_dr9_grz_256.fits", "cutout.bin", "cutout"),
    ("cutouts/hst_aegis/AEGIS_F606w_catalog.fits", "catalog.fits", "table"),
    ("galaxy_zoo2/train/spirals/101756.jpg", "101756.dat", "image"),
    ("catalogs/sdss_star_galaxy_qso_1000.csv", "objects.txt", "catalogue"),
    ("catalogs/mlz/SDSS_MGS.train", "SDSS_MGS.train", "catalogue"),
])
def test_kind_comes_from_the_content_not_the_name(shared_data, tmp_path, relative, new_name, kind):
    copy = tmp_path / new_name
    shutil.copy(shared_data / relative, copy)
    assert file_kind(copy) == kind


def test_png_and_gzipped_fits_are_recognised(shared_data, tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    assert sniff(tmp_path / "a.png") == "image"
    with gzip.open(tmp_path / "spec.fits.gz", "wb") as fh:
        fh.write((shared_data / "spectra/sdss/spec-0266-51602-0001.fits").read_bytes())
    assert sniff(tmp_path / "spec.fits.gz") == "fits" and file_kind(tmp_path / "spec.fits.gz") == "sdss"


def test_unsupported_files_are_named_with_the_reason(shared_data, tmp_path):
    with h5py.File(tmp_path / "tile.hdf5", "w") as f:
        f["object_id"] = np.array([b"a"])
    np.savez(tmp_path / "arrays.npz", x=np.zeros(3))
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    cases = {tmp_path / "tile.hdf5": "HDF5 file", tmp_path / "arrays.npz": "zip archive",
             tmp_path / "empty.csv": "empty file", tmp_path / "blob.bin": "binary file of unknown type",
             shared_data / "cutouts/hsc_cosmos/LICENSE": "not a table",
             shared_data / "spectra/desi/redrock-special-dark-27247.fits": "redshifts only"}
    for path, reason in cases.items():
        with pytest.raises(Unsupported, match=reason) as err:
            file_kind(path)
        assert str(path) in str(err.value)


def test_tiff_is_an_image(tmp_path):
    from PIL import Image

    path = tmp_path / "cutout.dat"  # the kind comes from the bytes, not the suffix
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(path, format="TIFF")
    assert file_kind(path) == "image"
