"""`astroembed convert` on folders and globs: every supported file converted (its records unchanged), every
other file named with the reason, mixed image shapes in configs of their own."""

import shutil
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.data.convert import convert
from astroembed.data.mmu import MMUSurvey
from astroembed.data.readers import read_any
from astroembed.data.records import InvalidDataError


def _readable_one_by_one(folder):
    """{file: object ids} of the files read_any reads when given one at a time (the reference)."""
    readable = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                readable[str(path)] = sorted(g.object_id for g in read_any(path))
            except InvalidDataError:
                pass
    return readable


# (folder, files read, files skipped): the real data as ../shared/data/README.md describes it.
SHARED_FOLDERS = [("spectra/sdss", 8, 0), ("spectra/desi", 4, 4), ("cutouts", 5, 15), ("catalogs", 2, 2)]


@pytest.mark.filterwarnings("ignore::astroembed.data.readers.ReaderWarning")
@pytest.mark.parametrize("relative, n_read, n_skipped", SHARED_FOLDERS)
def test_every_supported_file_of_each_shared_folder(shared_data, tmp_path, relative, n_read, n_skipped):
    folder = shared_data / relative
    report = convert([folder], tmp_path, survey="real")
    reference = _readable_one_by_one(folder)
    assert {r.path for r in report.read} == set(reference)  # every file a reader reads, nothing else
    assert (len(report.read), len(report.skipped)) == (n_read, n_skipped)
    assert all(r.reason for r in report.skipped)
    files = {str(p) for p in folder.rglob("*") if p.is_file()}
    assert {r.path for r in report.read} | {r.path for r in report.skipped} == files
    configs = [c for c in (tmp_path / "real").iterdir() if c.is_dir()]  # beside them: the MMU loading script
    written = sorted(oid for config in configs for oid in MMUSurvey(config).object_ids)
    assert written == sorted(oid for ids in reference.values() for oid in ids)


def test_the_command_names_each_skipped_file(shared_data, tmp_path):
    result = CliRunner().invoke(app, ["convert", str(shared_data / "spectra/desi"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "wrote 5 objects from 4 files" in result.output
    for name, reason in (("redrock-special-dark-27247.fits", "redshifts only"), ("LICENSE.rst", "not a table"),
                         ("edr/LICENSE.rst", "empty file")):
        line = next(line for line in result.output.splitlines() if line.rstrip().split(":")[0].endswith(name))
        assert reason in line


def test_a_mixed_folder_and_its_duplicates_and_broken_files(shared_data, tmp_path):
    mixed = tmp_path / "mixed"
    (mixed / "spirals").mkdir(parents=True)
    sdss = shared_data / "spectra/sdss/spec-0266-51602-0001.fits"
    shutil.copy(sdss, mixed / "a_spectrum.fits")
    shutil.copy(sdss, mixed / "b_same_spectrum_again.fits")  # the same object id: skipped, not half-written
    shutil.copy(shared_data / "galaxy_zoo2/train/spirals/101756.jpg", mixed / "spirals" / "101756.jpg")
    shutil.copy(shared_data / "cutouts/legacysurvey_dr9_grz_256.fits", mixed / "cutout.fits")
    shutil.copy(shared_data / "catalogs/sdss_star_galaxy_qso_1000.csv", mixed / "objects.csv")
    (mixed / "broken.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    (mixed / ".hidden.fits").write_bytes(b"not looked at")
    report = convert([mixed], tmp_path / "out", survey="mixed")
    skipped = {r.path.rsplit("/", 1)[1]: r.reason for r in report.skipped}
    assert set(skipped) == {"b_same_spectrum_again.fits", "broken.fits"}
    assert "duplicated object id" in skipped["b_same_spectrum_again.fits"]
    assert "FITS" in skipped["broken.fits"]
    notes = {r.path.rsplit("/", 1)[1]: r.notes for r in report.read}
    assert notes["objects.csv"] == ["masked 5 non-finite values (NaN/inf flux or ivar) in 1 of 1000 objects"]
    kinds = {r.path.rsplit("/", 1)[1]: (r.kind, r.config) for r in report.read}
    assert kinds == {"a_spectrum.fits": ("sdss", "default"), "cutout.fits": ("cutout", "default"),
                     "101756.jpg": ("image", "default_RGB_424x424"), "objects.csv": ("catalogue", "default")}
    main, rgb = MMUSurvey(tmp_path / "out/mixed/default"), MMUSurvey(tmp_path / "out/mixed/default_RGB_424x424")
    assert len(main) == 1 + 1 + 1000 and rgb.object_ids == ["101756"]
    assert rgb.get("101756").labels["class"] == "spirals"  # labelled as an image folder labels it
    original = read_any(sdss)[0]
    np.testing.assert_array_equal(main.get(original.object_id).spectrum.flux, original.spectrum.flux)


def test_globs_and_their_errors(shared_data, tmp_path):
    report = convert([str(shared_data / "spectra" / "**" / "coadd-*.fits")], tmp_path, survey="g")
    assert len(report.read) == 4 and not report.skipped and {r.kind for r in report.read} == {"desi"}
    with pytest.raises(InvalidDataError, match="no file matches"):
        convert([str(tmp_path / "*.nothing")], tmp_path / "x")


def test_a_folder_with_nothing_convertible_is_an_error_listing_why(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "README").write_text("Notes on the data\n\nThese files came from a survey of nearby\n"
                                            "galaxies, observed in 2019.\nSee the paper.\n")
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    output = " ".join(result.output.split())  # the console wraps long lines
    assert result.exit_code == 2 and "no file could be converted" in output
    assert "README: text, not a table" in output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.hdf5"))
