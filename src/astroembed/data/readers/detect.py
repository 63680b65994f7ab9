"""What a file holds, decided by its content rather than its name or folder.

:func:`file_kind` looks at the first bytes (FITS, JPEG/PNG, Parquet, HDF5, zip and gzip signatures),
then, for FITS, at the HDU structure (:func:`astroembed.data.readers.fits_kind`), and for text at whether
its first lines form a table (a header line naming the columns, then rows of equal field counts). It returns the kind
of reader to use, or raises :class:`Unsupported` with the reason a person needs to see.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from . import fits_kind
from ..records import InvalidDataError

__all__ = ["Unsupported", "sniff", "file_kind", "KINDS"]

# What file_kind returns: the FITS layouts of fits_kind (less 'redrock', which is refused), images, tables.
KINDS = ("sdss", "desi", "cutout", "table", "image", "catalogue")
_SIGNATURES = (
    (b"SIMPLE  =", "fits"),
    (b"\xff\xd8\xff", "image"),  # JPEG
    (b"\x89PNG\r\n\x1a\n", "image"),
    (b"II*\x00", "image"),  # TIFF, little- and big-endian (the image-folder reader takes .tif/.tiff)
    (b"MM\x00*", "image"),
    (b"PAR1", "parquet"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"PK\x03\x04", "zip"),
    (b"\x1f\x8b", "gzip"),
)
_HEAD = 8192
_TABLE_ROWS = 5  # data rows that must agree with the header


class Unsupported(InvalidDataError):
    """A file that no reader reads; the message says what it is and why it is skipped."""


def sniff(path: str | Path) -> str:
    """The container a file's first bytes announce: 'fits', 'image', 'parquet', 'hdf5', 'zip', 'text' or
    'binary' (gzip-compressed FITS counts as 'fits')."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
    kind = next((k for magic, k in _SIGNATURES if head.startswith(magic)), None)
    if kind == "gzip":
        try:
            with gzip.open(path, "rb") as fh:
                return "fits" if fh.read(9) == b"SIMPLE  =" else "binary"
        except (OSError, EOFError):
            return "binary"
    if kind is not None:
        return kind
    if b"\x00" in head:
        return "binary"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "text" if exc.start > len(head) - 4 else "binary"  # a character cut at the block's end
    return "text"


def _looks_like_table(path: Path) -> str | None:
    """None when the first lines are a header and rows with as many fields; else why they are not."""
    lines = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip() and not (lines and line.lstrip().startswith("#")):
                lines.append(line.strip().lstrip("#").strip())
            if len(lines) > _TABLE_ROWS:
                break
    if len(lines) < 2:
        return "text with fewer than two lines: no header and rows"
    sep = "," if lines[0].count(",") >= 1 else None
    counts = [len(line.split(sep)) for line in lines]
    if counts[0] < 2:
        return "text whose first line names fewer than two columns"
    if len(set(counts[1:])) != 1:
        return f"text, not a table: its first lines split into {counts} fields"
    return None


def file_kind(path: str | Path) -> str:
    """The reader a file needs, from its content: one of :data:`KINDS`.

    Raises :class:`Unsupported` (an InvalidDataError naming the file) for files no reader reads: MMU
    HDF5 tiles, zip/npz archives, redrock redshift files (read with their coadd), text that is not a
    table, other binary files.
    """
    path = Path(path)
    source = str(path)
    if path.stat().st_size == 0:
        raise Unsupported("empty file (0 bytes)", source=source)
    container = sniff(path)
    if container == "fits":
        kind = fits_kind(path)
        if kind == "redrock":
            raise Unsupported("a redrock file holds redshifts only; they are read with the coadd-*.fits of "
                              "the same name", source=source)
        return kind
    if container in ("image", "parquet"):
        return "image" if container == "image" else "catalogue"
    if container == "text":
        reason = _looks_like_table(path)
        if reason is not None:
            raise Unsupported(reason, source=source)
        return "catalogue"
    reasons = {"hdf5": "an HDF5 file (an MMU tile is already in the layout: use its folder directly)",
               "zip": "a zip archive (e.g. NumPy .npz): no reader for its arrays",
               "binary": "a binary file of unknown type (not FITS, JPEG/PNG/TIFF, Parquet or text)"}
    raise Unsupported(reasons[container], source=source)
