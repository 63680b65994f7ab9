"""Every reader's records survive the MMU layout unchanged (arrays and labels equal), through
`astroembed convert` as a user runs it."""

import numpy as np
import pytest
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.data.mmu import MMUSurvey
from astroembed.data.readers import read_any


def _assert_same(original, back):
    assert back.object_id == original.object_id
    assert np.isclose(back.ra, original.ra, equal_nan=True) and np.isclose(back.dec, original.dec, equal_nan=True)
    for modality, fields in (("image", ("flux", "ivar", "mask", "psf_fwhm")),
                             ("spectrum", ("flux", "ivar", "mask", "wavelength", "lsf_sigma")),
                             ("photometry", ("flux", "ivar"))):
        a, b = getattr(original, modality), getattr(back, modality)
        assert (a is None) == (b is None), modality
        if a is None:
            continue
        for field in fields:
            x, y = getattr(a, field), getattr(b, field)
            if x is None:
                assert y is None
                continue
            np.testing.assert_array_equal(np.asarray(y), np.asarray(x), err_msg=f"{modality}.{field}")
    if original.image is not None:
        assert back.image.bands == original.image.bands
        assert back.image.pixel_scale == original.image.pixel_scale or (
            np.isnan(back.image.pixel_scale) and np.isnan(original.image.pixel_scale))
    assert set(back.labels) == set(original.labels)
    for key, value in original.labels.items():
        if isinstance(value, float) and np.isnan(value):
            assert np.isnan(back.labels[key])
        else:
            assert back.labels[key] == value, key


@pytest.mark.parametrize("relative", [
    "spectra/sdss/spec-0266-51602-0001.fits",
    "spectra/desi/coadd-4-80613-thru20210324.fits",
    "spectra/desi/edr/coadd-sv3-dark-26065.fits",
    "cutouts/legacysurvey_dr9_grz_256.fits",
    "catalogs/sdss_star_galaxy_qso_1000.csv",
    "catalogs/mlz/SDSS_MGS.train",
])
def test_convert_round_trips_real_files_without_loss(shared_data, tmp_path, relative):
    path = shared_data / relative
    original = {g.object_id: g for g in read_any(path)}
    result = CliRunner().invoke(app, ["convert", str(path), "--out", str(tmp_path), "--survey", "real"])
    assert result.exit_code == 0, result.output
    survey = MMUSurvey(tmp_path / "real")
    assert sorted(survey.object_ids) == sorted(original)
    for oid, galaxy in original.items():
        _assert_same(galaxy, survey.get(oid))


def test_convert_streams_an_image_folder(shared_data, tmp_path):
    folder = tmp_path / "gz"
    for cls in ("spirals", "non_spirals"):
        (folder / cls).mkdir(parents=True)
        for src in sorted((shared_data / "galaxy_zoo2" / "train" / cls).glob("*.jpg"))[:3]:
            (folder / cls / src.name).write_bytes(src.read_bytes())
    original = {g.object_id: g for g in read_any(folder)}
    result = CliRunner().invoke(app, ["convert", str(folder), "--out", str(tmp_path / "out"), "--survey", "gz2"])
    assert result.exit_code == 0, result.output
    survey = MMUSurvey(tmp_path / "out" / "gz2")
    assert len(survey) == 6 and set(survey.healpix) == {-1}  # no positions: the documented tile -1
    for oid, galaxy in original.items():
        _assert_same(galaxy, survey.get(oid))


def test_convert_reports_a_bad_file_without_a_traceback(tmp_path):
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    result = CliRunner().invoke(app, ["convert", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "broken.fits" in result.output and "Traceback" not in result.output
