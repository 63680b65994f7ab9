"""Pictures (thumbnails, spectrum masks) and the search box's parser, against hand-made references."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from astroembed.app.queries import parse_position
from astroembed.app.render import _masked_runs, spectrum_series, thumbnail_png
from astroembed.data.records import Image, InvalidDataError, Spectrum


def test_rgb_cutouts_are_shown_as_they_are():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 128, 128)).astype(np.float32)  # how records store JPEG pixels
    png = PILImage.open(io.BytesIO(thumbnail_png(Image(rgb, ("R", "G", "B")))))
    np.testing.assert_array_equal(np.asarray(png), rgb.transpose(1, 2, 0).astype(np.uint8))


def test_bands_without_display_scales_get_fitted_ones():
    flux = np.random.default_rng(1).normal(0, 1, (2, 40, 40)).astype(np.float32)
    png = PILImage.open(io.BytesIO(thumbnail_png(Image(flux, ("F606W", "F814W")), size=64)))
    assert png.size == (64, 64) and png.mode == "RGB" and np.asarray(png).std() > 0


def test_masked_runs_and_series():
    good = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0], bool)
    assert [(int(a), int(b)) for a, b in _masked_runs(good)] == [(2, 4), (5, 6), (8, 9)]
    spectrum = Spectrum(flux=np.arange(5, dtype=np.float32), wavelength=np.arange(4000.0, 4005.0),
                        ivar=np.array([1, 0, 1, 1, 1], np.float32), mask=np.array([1, 1, 1, 0, 1], bool))
    series = spectrum_series(spectrum)
    assert series["flux"] == [0.0, None, 2.0, None, 4.0] and series["n_masked"] == 2


@pytest.mark.parametrize("text,expected", [
    ("150.1 2.2", (150.1, 2.2, None)),
    ("150.1, -2.2", (150.1, -2.2, None)),
    ("150.1 2.2 30", (150.1, 2.2, 30.0)),
    ("10:00:24 +02:12:00", (150.1, 2.2, None)),      # 10h00m24s = 150.1 deg; +2d12m = 2.2 deg
    ("10h00m24s -2d12m00s", (150.1, -2.2, None)),
])
def test_positions(text, expected):
    ra, dec, radius = parse_position(text)
    assert ra == pytest.approx(expected[0], abs=1e-9) and dec == pytest.approx(expected[1], abs=1e-9)
    assert radius == expected[2]


@pytest.mark.parametrize("text", ["360 0", "10 91", "-1 0", "ngc 1300", "10:00 +95:00:00"])
def test_positions_out_of_range_or_not_positions(text):
    with pytest.raises(InvalidDataError, match="field 'q'"):
        parse_position(text)
