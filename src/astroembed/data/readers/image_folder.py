"""Folders of JPEG/PNG/TIFF colour cutouts (Galaxy Zoo style).

Each image becomes one record: flux is the RGB values as float32 on the 0-255 display scale, shape
(3, H, W), bands ("R", "G", "B"); object_id is the file stem; ra/dec are NaN, the documented "position
unknown", unless a labels CSV provides them. Labels come from the sub-folder an image sits in (label
``class``) and/or from a CSV joined on the file stem.

Bit depth: 8-bit images (and grey-scale, palette, RGBA ones, converted to RGB) keep their values.
16-bit grey-scale PNG/TIFF are read at their depth: value / 257 puts 0..65535 on the same 0-255 scale
without clipping, and float32 keeps every 16-bit step (round(flux * 257) gives the file's values back);
the grey plane fills R, G and B. Images Pillow would cut to 8 bits per channel (16-bit colour or
grey+alpha) and 32-bit integer or float images (no display range: these are measurements, store them
as FITS cutouts) are refused with an InvalidDataError naming the file; so are images beyond Pillow's
decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``; raise it for a file you trust).
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..records import Galaxy, Image, InvalidDataError, check_unique_ids, labels_from_mapping
from ._common import finish, warn

__all__ = ["IMAGE_SUFFIXES", "is_image_folder", "list_images", "load_rgb", "iter_image_folder", "read_image_folder",
           "read_image_file"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
RGB_BANDS = ("R", "G", "B")
CHUNK = 64
ID_CANDIDATES = ("object_id", "galaxyid", "id", "objid", "filename", "file", "name")
RA_CANDIDATES = ("ra", "ra_deg", "raj2000")
DEC_CANDIDATES = ("dec", "dec_deg", "dej2000", "decj2000")


def list_images(folder: str | Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files in ``folder`` and its sub-folders, sorted, hidden files excluded."""
    folder = Path(folder)
    suffixes = tuple(s.lower() for s in suffixes)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def is_image_folder(path: Path) -> bool:
    """True for a folder of JPEG/PNG cutouts (and no MMU tiles): what training and ``convert`` stream."""
    path = Path(path)
    return path.is_dir() and not any(path.rglob("*.hdf5")) and any(
        p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*"))
GREY_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings is process-wide: one thread at a time inside it


def _open_image(path: Path):
    """Open (header only) with Pillow's decompression-bomb warning raised as an error, not printed."""
    from PIL import Image as PILImage

    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        return PILImage.open(path)


def _source_bits(im) -> int:
    """Bits per sample in the file (Pillow's mode does not say: a 16-bit RGB PNG opens as 8-bit "RGB")."""
    bits = [8]
    tags = getattr(im, "tag_v2", None)  # TIFF BitsPerSample
    if tags is not None and 258 in tags:
        bits += [int(b) for b in np.ravel(tags[258])]
    for tile in im.tile:  # the decoder's raw mode: "RGB;16B", "I;16B", "F;32F", "L;2" ...
        rawmode = tile.args[0] if isinstance(tile.args, tuple) and tile.args else tile.args
        found = re.search(r";(\d+)", rawmode) if isinstance(rawmode, str) else None
        if found:
            bits.append(int(found.group(1)))
    return max(bits)


def _rgb_values(im, path: Path) -> np.ndarray:
    """(H, W, 3) float32 on the 0-255 scale, at the file's depth; InvalidDataError for what cannot be."""
    bits = _source_bits(im)
    if im.mode in GREY_16BIT_MODES or (im.mode == "I" and bits <= 16):
        grey = np.asarray(im).astype(np.float32) / np.float32(257.0)  # 65535 -> 255, nothing clipped
        return np.repeat(grey[..., None], 3, axis=-1)
    if im.mode in ("F", "I"):
        raise InvalidDataError(f"{bits}-bit {'float' if im.mode == 'F' else 'integer'} image has no 0-255 "
                               "display scale to put it on; store measurements as FITS cutouts (bands, H, W), "
                               "which astroembed convert reads with their units", source=str(path),
                               field="image_array")
    if bits > 8:
        raise InvalidDataError(f"{bits}-bit-per-channel {im.mode} image: Pillow reads it cut to 8 bits; "
                               "save it as 8-bit RGB with the stretch you want, as 16-bit grey-scale, or as "
                               "a FITS cutout", source=str(path), field="image_array")
    # Grey-scale, palette and RGBA images are converted to 8-bit RGB so every record from a
    # folder has the same bands.
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB")).astype(np.float32)


def load_rgb(path: Path) -> np.ndarray:
    """Decode one image to a (3, H, W) float32 array on the 0-255 scale (module docstring: bit depth)."""
    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with _open_image(path) as im:
            rgb = _rgb_values(im, path)
    except InvalidDataError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise InvalidDataError(f"image too large to decode safely ({exc}); if you trust the file, raise "
                               "PIL.Image.MAX_IMAGE_PIXELS", source=str(path), field="image_array") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        # Pillow raises OSError for truncated files ("image file is truncated") and
        # UnidentifiedImageError for files that are not images at all.
        raise InvalidDataError(f"cannot decode image ({exc})", source=str(path),
                               field="image_array") from None
    return rgb.transpose(2, 0, 1)


def _pick(columns: Sequence[str], explicit: str | None, candidates: Sequence[str], what: str,
          source: str) -> str | None:
    if explicit is not None:
        if explicit not in columns:
            raise InvalidDataError(f"{what} column not found (columns: {list(columns)})", source=source,
                                   field=explicit)
        return explicit
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), None)


def _read_labels_csv(csv_path: str | Path, id_column: str | None, label_columns: Sequence[str] | None
                     ) -> dict[str, dict]:
    import pandas as pd

    source = str(csv_path)
    try:
        # Every column as text first: ids such as 100008 must join with file stems exactly
        # (no 100008.0), and numbers are converted back per value below.
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InvalidDataError(f"cannot read labels CSV ({exc})", source=source) from None
    id_col = _pick(list(table.columns), id_column, ID_CANDIDATES, "id", source)
    if id_col is None:
        raise InvalidDataError(f"no id column found (tried {list(ID_CANDIDATES)}); pass id_column=",
                               source=source, field="object_id")
    ids = table[id_col].map(lambda s: Path(s.strip()).stem if s.strip().lower().endswith(IMAGE_SUFFIXES)
                            else s.strip())
    check_unique_ids(ids, source=source)
    ra_col = _pick(list(table.columns), None, RA_CANDIDATES, "ra", source)
    dec_col = _pick(list(table.columns), None, DEC_CANDIDATES, "dec", source)
    if label_columns is None:
        label_columns = [c for c in table.columns if c not in (id_col, ra_col, dec_col)]
    for c in label_columns:
        if c not in table.columns:
            raise InvalidDataError("label column not found", source=source, field=c)
    rows = {}
    for i, oid in enumerate(ids):
        row = {c: _number_or_text(table[c].iat[i]) for c in label_columns}
        if ra_col is not None and dec_col is not None:
            row["__ra"], row["__dec"] = (_number_or_text(table[ra_col].iat[i]),
                                         _number_or_text(table[dec_col].iat[i]))
        rows[oid] = row
    return rows


def _number_or_text(text: str):
    text = text.strip()
    if text == "":
        return float("nan")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def iter_image_folder(path: str | Path, labels_csv: str | Path | None = None, id_column: str | None = None,
                      label_columns: Sequence[str] | None = None, class_label: str = "class",
                      pixel_scale: float = float("nan"), workers: int | None = None) -> Iterator[Galaxy]:
    """Lazily yield one validated record per image under ``path``; see :func:`read_image_folder`.

    The folder is listed (and object ids checked for duplicates) up front; images are decoded in
    chunks of 64 on ``workers`` threads (default: CPU count, at most 4), so memory stays
    bounded however large the folder. Records come in sorted path order.
    """
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    folder = Path(path)
    if not folder.is_dir():
        raise InvalidDataError("not a folder", source=str(folder))
    files = list_images(folder)
    if not files:
        raise InvalidDataError(f"no {'/'.join(IMAGE_SUFFIXES)} images in the folder (FITS cutouts are "
                               "converted by naming the files, e.g. astroembed convert DIR/*.fits)",
                               source=str(folder))
    check_unique_ids([p.stem for p in files], source=str(folder))
    csv_rows = _read_labels_csv(labels_csv, id_column, label_columns) if labels_csv else None
    if csv_rows is not None:
        missing = sum(p.stem not in csv_rows for p in files)
        if missing:
            warn(f"{missing} of {len(files)} images have no row in {labels_csv}; they get no CSV labels",
                 str(folder))
    # Everything above runs now (errors surface at the call); decoding runs as the caller iterates.
    return _decode_all(files, folder, csv_rows, class_label, pixel_scale, workers)


def _decode_all(files, folder, csv_rows, class_label, pixel_scale, workers) -> Iterator[Galaxy]:
    if workers <= 1:
        for file in files:
            yield _record(file, folder, csv_rows, class_label, pixel_scale)
        return
    # Decoding (Pillow) and validation (numpy) release the GIL, so threads overlap them; chunks
    # keep at most CHUNK decoded images waiting in memory.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(files), CHUNK):
            yield from pool.map(lambda f: _record(f, folder, csv_rows, class_label, pixel_scale),
                                files[start:start + CHUNK])


def _record(file: Path, folder: Path | None, csv_rows: dict | None, class_label: str,
            pixel_scale: float) -> Galaxy:
    labels: dict = {}
    if folder is not None and file.parent != folder:
        labels[class_label] = file.relative_to(folder).parts[0]
    ra = dec = float("nan")
    row = (csv_rows or {}).get(file.stem)
    if row is not None:
        row = dict(row)
        ra, dec = row.pop("__ra", ra), row.pop("__dec", dec)
        labels.update(labels_from_mapping(row))
    image = Image(flux=load_rgb(file), bands=RGB_BANDS, pixel_scale=pixel_scale)
    galaxy = Galaxy(file.stem, ra, dec, image=image, labels=labels)
    galaxy.validate(source=str(file))
    return galaxy


def read_image_folder(path: str | Path, labels_csv: str | Path | None = None, id_column: str | None = None,
                      label_columns: Sequence[str] | None = None, class_label: str = "class",
                      pixel_scale: float = float("nan"), workers: int | None = None) -> list[Galaxy]:
    """Read every JPEG/PNG/TIFF under ``path`` (recursively) into records.

    - Image: bands ("R", "G", "B"), flux = the 0-255 values as float32 (3, H, W) (16-bit grey-scale:
      value / 257, see the module docstring), ivar unknown,
      ``pixel_scale`` as given (arcsec/pixel; NaN = unknown).
    - object_id: the file stem (``100008.jpg`` -> ``"100008"``); stems must be unique.
    - labels: ``class_label`` (default ``class``) = name of the first-level sub-folder holding the
      image (none for images directly in ``path``); plus, with ``labels_csv``, the CSV's
      ``label_columns`` (default: all but id/ra/dec) joined on ``id_column`` (default: the first of
      object_id, GalaxyID, id, objid, filename, ... present; values ending in .jpg/.png are
      reduced to their stem). Numeric cells become numbers.
    - ra, dec: NaN (position unknown) unless the CSV has ra/dec columns.

    Corrupt or truncated images raise InvalidDataError naming the file. Memory: each record holds
    a float32 copy (~2.2 MB for 424x424); use :func:`iter_image_folder` for large folders.
    """
    return list(iter_image_folder(path, labels_csv, id_column, label_columns, class_label, pixel_scale,
                                  workers))


def read_image_file(path: str | Path, pixel_scale: float = float("nan")) -> list[Galaxy]:
    """Read a single JPEG/PNG/TIFF into a one-record list (object_id = file stem, position unknown)."""
    return finish([_record(Path(path), None, None, "class", pixel_scale)], str(path))


def read_image_in_folder(path: str | Path, folder: str | Path, class_label: str = "class",
                         pixel_scale: float = float("nan")) -> list[Galaxy]:
    """One image of an image folder as a one-record list, labelled as :func:`read_image_folder` labels it
    (``class_label`` = the first-level sub-folder of ``folder`` holding it): for callers that read a
    folder file by file, e.g. to skip one bad file and go on."""
    return finish([_record(Path(path), Path(folder), None, class_label, pixel_scale)], str(path))
