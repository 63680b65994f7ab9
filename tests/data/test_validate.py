"""The shared validation rules (astroembed.data.validate), each on a hand-built case: the error names
the file, the object and the field, and the model-input checks give hand-computed answers."""

import h5py
import numpy as np
import pytest

from astroembed.data.records import InvalidDataError
from astroembed.data.validate import (MIN_GRID_COVERAGE, ModelInputs, band_order, check_image_rows,
                                      check_positions, check_spectrum_rows, check_tile, check_unique_across,
                                      check_wavelength_coverage)

IDS = np.array(["a", "b", "c"])


def write_tile(path, **columns):
    base = {"object_id": np.array([b"a", b"b", b"c"]), "ra": np.array([10.0, 20.0, 30.0]),
            "dec": np.array([-5.0, 0.0, 5.0])}
    base.update(columns)
    with h5py.File(path, "w") as f:
        for name, values in base.items():
            if values is not None:
                f.create_dataset(name, data=values)
    return path


def tile_error(path) -> InvalidDataError:
    with h5py.File(path, "r") as f, pytest.raises(InvalidDataError) as err:
        check_tile(f, str(path))
    return err.value


def test_a_valid_tile_returns_its_ids(tmp_path):
    path = write_tile(tmp_path / "t.hdf5", image_array=np.zeros((3, 2, 4, 4), np.float32),
                      image_band=np.array([[b"g", b"r"]] * 3), image_ivar=np.ones((3, 2, 4, 4), np.float32))
    with h5py.File(path, "r") as f:
        assert check_tile(f, str(path)).tolist() == ["a", "b", "c"]


@pytest.mark.parametrize("columns, field, words", [
    ({"ra": None}, "ra", "missing required"),
    ({"dec": np.zeros(2)}, "dec", "2 rows"),
    ({"redshift": np.zeros(4)}, "redshift", "4 rows"),
    ({"image_array": np.zeros((3, 2, 4, 4)), "image_band": np.array([[b"g", b"r", b"z"]] * 3)},
     "image_band", "3 band names for 2 image planes"),
    ({"image_array": np.zeros((3, 2, 4, 4))}, "image_band", "missing beside image_array"),
    ({"image_array": np.zeros((3, 2, 4, 4)), "image_band": np.array([[b"g", b"r"]] * 3),
      "image_ivar": np.ones((3, 2, 4, 5))}, "image_ivar", "does not match image_array"),
    ({"spectrum_flux": np.zeros((3, 5)), "spectrum_lambda": np.arange(3.0)}, "spectrum_lambda",
     "expected 2 dimensions"),
    ({"spectrum_flux": np.zeros(3), "spectrum_lambda": np.zeros(3)}, "spectrum_flux", "expected 2 dimensions"),
    ({"object_id": np.array([b"a", b"b", b"a"])}, "object_id", "duplicated object id"),
    ({"object_id": np.array([b"a", b"", b"c"])}, "object_id", "empty object id"),
])
def test_a_malformed_tile_names_file_and_field(tmp_path, columns, field, words):
    path = write_tile(tmp_path / "t.hdf5", **columns)
    err = tile_error(path)
    assert err.source == str(path) and err.field == field
    assert words in str(err) and str(path) in str(err)


def test_ids_must_be_unique_across_tiles_and_both_files_are_named():
    with pytest.raises(InvalidDataError) as err:
        check_unique_across([np.array(["a", "b"]), np.array(["c", "b"])], ["tile1.hdf5", "tile2.hdf5"])
    assert err.value.object_id == "b" and err.value.source == "tile1.hdf5" and "also in tile2.hdf5" in str(err.value)
    check_unique_across([np.array(["a", "b"]), np.array(["c"])], ["t1", "t2"])  # no error


@pytest.mark.parametrize("ra, dec, bad_id, field", [
    ([10, 361, 5], [0, 0, 0], "b", "ra"),
    ([10, 20, -0.1], [0, 0, 0], "c", "ra"),
    ([10, 20, 30], [0, 0, np.inf], "c", "dec"),
    ([10, np.nan, 30], [0, 0, 0], "b", "ra"),           # half a position is an error
])
def test_positions_out_of_range_name_the_object(ra, dec, bad_id, field):
    with pytest.raises(InvalidDataError) as err:
        check_positions(ra, dec, IDS, "f.hdf5")
    assert (err.value.object_id, err.value.field, err.value.source) == (bad_id, field, "f.hdf5")


def test_unknown_position_is_both_nan_and_allowed():
    check_positions([np.nan, 0, 360], [np.nan, -90, 90], IDS)


def test_image_rows():
    bands = np.array([["g", "r"], ["", ""], ["g", "r"]], dtype=object)
    ivar = np.ones((3, 2, 2, 2))
    ivar[0, 0, 0, 0] = np.nan  # non-finite: masked later, not an error
    assert check_image_rows(bands, IDS, "f", ivar).tolist() == [True, False, True]
    ivar[1] = -1  # a row without an image is not checked
    check_image_rows(bands, IDS, "f", ivar)
    ivar[2, 1, 0, 0] = -0.5
    with pytest.raises(InvalidDataError, match="object c, field 'image_ivar': 1 negative"):
        check_image_rows(bands, IDS, "f", ivar)
    with pytest.raises(InvalidDataError, match="object a, field 'image_band'.*unnamed"):
        check_image_rows(np.array([["g", ""], ["g", "r"], ["g", "r"]], dtype=object), IDS, "f")
    with pytest.raises(InvalidDataError, match="object b, field 'image_band'.*duplicated"):
        check_image_rows(np.array([["g", "r"], ["g", "g"], ["g", "r"]], dtype=object), IDS, "f")


def test_spectrum_rows():
    wave = np.array([[4000.0, 4001, 4002, -1], [-1, -1, -1, -1], [4000, 4002, 4004, 4006]])
    assert check_spectrum_rows(wave, IDS, "f").tolist() == [True, False, True]
    cases = [((0, 3), np.nan, "a", "non-finite"), ((2, 1), -1, "c", "inside the spectrum"),
             ((2, 2), 4001, "c", "pixel 2 \\(4001 A\\) follows 4002 A")]
    for (row, col), value, oid, words in cases:
        bad = wave.copy()
        bad[row, col] = value
        with pytest.raises(InvalidDataError, match=f"object {oid}, field 'spectrum_lambda': .*{words}"):
            check_spectrum_rows(bad, IDS, "f")
    ivar = np.ones_like(wave)
    ivar[0, 3] = -5  # on padding: ignored
    check_spectrum_rows(wave, IDS, "f", ivar)
    ivar[2, 0] = -5
    with pytest.raises(InvalidDataError, match="object c, field 'spectrum_ivar'"):
        check_spectrum_rows(wave, IDS, "f", ivar)


def test_band_order_picks_planes_by_name():
    assert band_order(("g", "r", "z"), ("g", "r", "z")) is None
    assert band_order(("z", "r", "g"), ("g", "r", "z")).tolist() == [2, 1, 0]
    assert band_order(("g", "r", "i", "z"), ("g", "r", "z")).tolist() == [0, 1, 3]
    assert band_order(("u", "g", "r"), ("g", "r", "z"), bands_as=("g", "r", "z")) is None
    with pytest.raises(InvalidDataError, match=r"object x, field 'image_band'.*missing \['z'\].*--bands-as g,r,z"):
        band_order(("u", "g", "r"), ("g", "r", "z"), source="f", object_id="x")
    with pytest.raises(InvalidDataError, match="bands_as names 2 bands"):
        band_order(("u", "g", "r"), ("g", "r", "z"), bands_as=("g", "r"))


GRID = (3600.0, 9824.0)
SDSS = 10 ** np.arange(3.5786, 3.9640, 1e-4)   # 3790-9203 A


def test_coverage_of_real_grids_passes_and_a_narrow_one_fails_with_the_expected_range():
    check_wavelength_coverage(SDSS, GRID)  # (9203 - 3790) / 6224 = 87 %
    narrow = np.full(len(SDSS), -1.0)  # 10 % of the grid, then the MMU padding
    narrow[:50] = np.linspace(6000, 6000 + 0.1 * (GRID[1] - GRID[0]), 50)
    with pytest.raises(InvalidDataError) as err:
        check_wavelength_coverage(np.stack([SDSS, narrow]), GRID, ["sdss", "narrow"], "f.fits")
    assert err.value.object_id == "narrow" and err.value.field == "spectrum_lambda"
    assert "cover 10%" in str(err.value) and "3600-9824 A" in str(err.value)
    edge = np.linspace(GRID[1] - (MIN_GRID_COVERAGE + 0.01) * 6224, GRID[1] + 3000, 50)
    check_wavelength_coverage(edge, GRID)  # 21 % inside the grid: enough


@pytest.mark.parametrize("unit, convert", [("nm", lambda w: w / 10), ("micron", lambda w: w / 1e4),
                                           (r"log10\(Angstrom\)", np.log10)])
def test_wavelength_units_are_recognised(unit, convert):
    with pytest.raises(InvalidDataError, match=f"object #0 of the input, field 'spectrum_lambda'.*look like {unit}"):
        check_wavelength_coverage(convert(SDSS), GRID)


def test_model_inputs_of_an_embedder():
    class Image:
        modality, bands = "image", ("g", "r", "z")

    class Spectrum:
        modality = "spectrum"

        class preprocess_config:
            wave_min, wave_max = 3800.0, 9800.0

    image, spectrum = ModelInputs.of(Image(), bands_as=("g", "r", "z")), ModelInputs.of(Spectrum())
    assert (image.bands, image.wave_range, image.bands_as) == (("g", "r", "z"), None, ("g", "r", "z"))
    assert (spectrum.bands, spectrum.wave_range) == (None, (3800.0, 9800.0))
    assert image.image_planes(("u", "g", "r")) is None  # declared
    spectrum.check_spectra(SDSS)
    with pytest.raises(InvalidDataError, match="nm"):
        spectrum.check_spectra(SDSS / 10)
