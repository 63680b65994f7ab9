"""Image files keep their range: 16-bit read at depth, what Pillow would clip refused, bombs refused.

Every file is made here (synthetic), so these run without ../shared/data.
"""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

from astroembed.data.readers import InvalidDataError, iter_image_folder, read_any
from astroembed.data.readers.image_folder import load_rgb

# A 16-bit ramp with a hot core: the faint ramp (< 4096) is what 8-bit clipping destroyed.
RAMP = (np.arange(48 * 40, dtype=np.uint32).reshape(48, 40) * 2).astype(np.uint16)
RAMP[20:24, 18:22] = 65535


def _png16(path, planes: np.ndarray, color_type: int):
    """Write a 16-bit PNG byte by byte (Pillow cannot write 16-bit colour): planes is (H, W) or (H, W, C)."""
    height, width = planes.shape[:2]
    rows = planes.reshape(height, -1).astype(">u2")
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(height))  # filter type 0 on each row

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_greyscale_is_read_at_its_depth(tmp_path, suffix):
    path = tmp_path / f"ramp{suffix}"
    PILImage.fromarray(RAMP).save(path)
    flux = load_rgb(path)
    assert flux.shape == (3, 48, 40) and flux.dtype == np.float32
    # Every 16-bit step survives: the file's values come back exactly from the 0-255 scale.
    np.testing.assert_array_equal(np.round(flux * 257).astype(np.int64), np.broadcast_to(RAMP, (3, 48, 40)))
    assert flux.max() == 255.0
    # Clipping to 8 bits put 99.5 % of such pixels at 255; here only the core (16 of 1920) is.
    assert np.count_nonzero(flux[0] == 255.0) == 16


def test_16bit_folder_records_keep_the_range(tmp_path):
    PILImage.fromarray(RAMP).save(tmp_path / "a.png")
    PILImage.fromarray(RAMP[::-1].copy()).save(tmp_path / "b.png")
    records = {g.object_id: g for g in iter_image_folder(tmp_path, workers=2)}
    np.testing.assert_allclose(records["a"].image.flux[1], RAMP / 257.0, rtol=1e-6)
    np.testing.assert_allclose(records["b"].image.flux[2], RAMP[::-1] / 257.0, rtol=1e-6)


def test_8bit_images_keep_their_values(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).save(tmp_path / "rgb.png")
    PILImage.fromarray(rgb[..., 0]).save(tmp_path / "grey.tif")
    np.testing.assert_array_equal(load_rgb(tmp_path / "rgb.png"), rgb.transpose(2, 0, 1))
    np.testing.assert_array_equal(load_rgb(tmp_path / "grey.tif"), np.repeat(rgb[None, ..., 0], 3, 0))


@pytest.mark.parametrize("color_type, channels", [(2, 3), (6, 4), (4, 2)])  # RGB, RGBA, grey + alpha
def test_16bit_colour_png_is_refused_not_cut_to_8_bits(tmp_path, color_type, channels):
    path = _png16(tmp_path / "colour16.png", np.stack([RAMP] * channels, axis=-1), color_type)
    assert PILImage.open(path).getextrema()[0][1] <= 255  # what Pillow alone would hand back
    with pytest.raises(InvalidDataError, match=r"colour16.png, field 'image_array': 16-bit-per-channel"):
        load_rgb(path)
    with pytest.raises(InvalidDataError, match="colour16.png"):  # the CLI's path to the reader
        read_any(path)


@pytest.mark.parametrize("array", [RAMP.astype(np.float32) / 7, RAMP.astype(np.int32) * 1000])
def test_32bit_float_and_integer_images_are_refused(tmp_path, array):
    path = tmp_path / "measurement.tif"
    PILImage.fromarray(array).save(path)
    with pytest.raises(InvalidDataError, match=r"measurement.tif.*32-bit .* no 0-255 display scale.*FITS"):
        load_rgb(path)


@pytest.mark.parametrize("limit", [500, 1500])  # 1920 pixels: > 2x limit raises in Pillow, > limit warns
def test_decompression_bomb_is_an_error_naming_the_file(tmp_path, monkeypatch, limit):
    path = tmp_path / "bomb.png"
    PILImage.fromarray(RAMP).save(path)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", limit)
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # a warning Pillow printed instead of the error would be recorded
        with pytest.raises(InvalidDataError, match=r"bomb.png, field 'image_array': image too large.*MAX_IMAGE_PIXELS"):
            load_rgb(path)
    assert not caught
    assert warnings.filters == filters  # the reader's own filter did not leak into the process


def test_folder_of_fits_files_says_how_to_convert_them(tmp_path):
    (tmp_path / "cutout.fits").write_bytes(b"SIMPLE  =                    T")
    with pytest.raises(InvalidDataError, match=r"no .*images in the folder.*astroembed convert DIR/\*.fits"):
        next(iter_image_folder(tmp_path))
