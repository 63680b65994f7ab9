"""Query files sent by a browser: checked before any parser sees them, then read by the package's readers.

What an upload may be: a cutout (FITS with a 2-D/3-D primary array, JPEG, PNG) or a spectrum (SDSS
spec-lite or DESI coadd FITS), holding exactly one object. Checks, cheapest first:

- size: at most ``max_bytes`` (the server also refuses larger request bodies before reading them);
- type: the name's suffix and the file's first bytes (magic numbers) must agree, so a renamed file
  cannot reach a parser it was not meant for; gzip and tile-compressed FITS are refused, because
  their decompressed size is not bounded by the upload size;
- images: width x height from the header, before decoding, at most ``max_pixels`` (a PNG of a few KB
  can decode to gigabytes: a decompression bomb);
- FITS: every HDU's data size from its header, at most ``8 x max_pixels`` bytes in all (``max_pixels``
  float64 values).

The bytes are written to a private temporary folder under a name the server chooses (the client's file
name is used only for messages), read with :func:`astroembed.data.readers.read_any`, and deleted.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..data.records import Galaxy, InvalidDataError

__all__ = ["UploadLimits", "ParsedUpload", "parse_upload", "safe_name", "UploadTooLargeError"]

SUFFIX_KINDS = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".jpg": "jpeg", ".jpeg": "jpeg",
                ".png": "png"}
MAGIC = {"fits": b"SIMPLE  =", "png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff"}


class UploadTooLargeError(InvalidDataError):
    """An upload over a size limit (the app answers 413)."""


@dataclass(frozen=True)
class UploadLimits:
    """max_bytes: file size; max_pixels: decoded image pixels or FITS data values."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 16 * 1024 * 1024


@dataclass
class ParsedUpload:
    galaxy: Galaxy
    kind: str
    sha256: str
    warnings: list[str] = field(default_factory=list)


def safe_name(filename: str | None) -> str:
    """The client's file name reduced to a short, printable base name, for messages only."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = re.sub(r"[^A-Za-z0-9._+-]", "_", base)[:80]
    return base or "upload"


def _kind(name: str, data: bytes) -> str:
    suffix = Path(name.lower()).suffix
    if name.lower().endswith((".gz", ".fz", ".bz2", ".zip")):
        raise InvalidDataError("compressed files are not accepted; upload the uncompressed FITS, JPEG or PNG",
                               source=name)
    kind = SUFFIX_KINDS.get(suffix)
    if kind is None:
        raise InvalidDataError(f"unsupported file type {suffix or '(no suffix)'!r}; upload a .fits cutout or "
                               "spectrum, or a .jpg/.png cutout", source=name)
    if not data.startswith(MAGIC[kind]):
        raise InvalidDataError(f"the content is not a {kind.upper()} file (its first bytes do not match)",
                               source=name)
    return kind


def _check_image_pixels(data: bytes, name: str, limits: UploadLimits) -> None:
    import io

    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as im:  # reads the header only
                width, height = im.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, PILImage.DecompressionBombWarning,
            PILImage.DecompressionBombError) as exc:
        raise InvalidDataError(f"cannot read the image header ({exc})", source=name, field="image_array") from None
    if width * height > limits.max_pixels:
        raise UploadTooLargeError(f"image is {width} x {height} pixels; the limit is {limits.max_pixels} pixels",
                                  source=name, field="image_array")


def _check_fits_sizes(path: Path, name: str, limits: UploadLimits) -> None:
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            total = 0
            for hdu in hdul:
                header = hdu.header
                if header.get("ZIMAGE") or header.get("XTENSION", "").strip() not in ("", "IMAGE", "BINTABLE",
                                                                                     "TABLE"):
                    raise InvalidDataError("tile-compressed or unusual FITS extensions are not accepted",
                                           source=name, field=hdu.name)
                # FITS standard: data bytes = |BITPIX| / 8 x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn)
                n_axes = int(header.get("NAXIS", 0))
                values = 1 if n_axes else 0
                for axis in range(1, n_axes + 1):
                    values *= int(header.get(f"NAXIS{axis}", 0))
                total += abs(int(header.get("BITPIX", 8))) // 8 * int(header.get("GCOUNT", 1)) * (
                    int(header.get("PCOUNT", 0)) + values)
                if total > limits.max_pixels * 8:  # bytes: up to max_pixels float64 values
                    raise UploadTooLargeError(f"FITS data of {total} bytes is over the limit", source=name,
                                              field=hdu.name)
    except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
        if isinstance(exc, InvalidDataError):
            raise
        raise InvalidDataError(f"not a readable FITS file ({exc})", source=name) from None


def parse_upload(data: bytes, filename: str | None, limits: UploadLimits = UploadLimits()) -> ParsedUpload:
    """Check and read one uploaded file into its single :class:`Galaxy` record.

    Raises InvalidDataError (UploadTooLargeError for size limits) naming the client's file name.
    """
    from ..data.readers import read_any

    name = safe_name(filename)
    if not data:
        raise InvalidDataError("the file is empty (0 bytes)", source=name)
    if len(data) > limits.max_bytes:
        raise UploadTooLargeError(f"the file is {len(data)} bytes; the limit is {limits.max_bytes}", source=name)
    kind = _kind(name, data)
    if kind in ("png", "jpeg"):
        _check_image_pixels(data, name, limits)
    with tempfile.TemporaryDirectory(prefix="astroembed-upload-") as tmp:
        path = Path(tmp) / f"upload{Path(name.lower()).suffix}"
        path.write_bytes(data)
        try:
            if kind == "fits":
                _check_fits_sizes(path, name, limits)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                galaxies = read_any(path)
        except InvalidDataError as exc:
            # The reader names our temporary file; the user knows the file by the name they gave it.
            raise type(exc)(str(exc).replace(str(path), name)) from None
        messages = [str(w.message).replace(str(path), name) for w in caught
                    if issubclass(w.category, UserWarning)]
    if len(galaxies) != 1:
        raise InvalidDataError(f"a query file must hold one object, this one has {len(galaxies)}", source=name)
    galaxy = galaxies[0]
    if galaxy.image is None and galaxy.spectrum is None:
        raise InvalidDataError("holds neither an image nor a spectrum (a catalogue table?)", source=name)
    return ParsedUpload(galaxy, kind, hashlib.sha256(data).hexdigest(), messages)
