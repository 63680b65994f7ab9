"""Helpers shared by the readers: opening FITS files safely, finding HDUs and columns, and the final
validation pass that every reader ends with.

Reports from readers (objects skipped, values masked) go through :class:`ReaderWarning`, a
``UserWarning`` subclass, so a caller can turn them into errors (``warnings.simplefilter("error",
ReaderWarning)``) or silence them, and tests can assert them with ``pytest.warns``.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..records import Galaxy, InvalidDataError, check_unique_ids

__all__ = ["ReaderWarning", "open_fits", "get_hdu", "get_column", "finish"]


class ReaderWarning(UserWarning):
    """A reader skipped objects or masked values; the message says which file and how many."""


def check_file(path: str | Path) -> Path:
    """Return ``path`` as a Path after checking it is a non-empty regular file."""
    path = Path(path)
    if not path.exists():
        raise InvalidDataError("file does not exist", source=str(path))
    if path.is_dir():
        raise InvalidDataError("expected a file, got a folder", source=str(path))
    if path.stat().st_size == 0:
        raise InvalidDataError("file is empty (0 bytes)", source=str(path))
    return path


@contextmanager
def open_fits(path: str | Path) -> Iterator["fits.HDUList"]:  # noqa: F821
    """Open a FITS file read-only; any failure to parse it (truncated, not FITS) becomes an
    :class:`InvalidDataError` naming the file instead of an astropy traceback."""
    from astropy.io import fits

    path = check_file(path)
    try:
        # memmap=False, lazy_load_hdus=False: every header is read now, so a damaged file fails
        # here, in one place, rather than at the first column access deep inside a reader.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except (OSError, ValueError, TypeError, IndexError, EOFError) as exc:
        raise InvalidDataError(f"not a readable FITS file ({exc})", source=str(path)) from None
    truncated = [" ".join(str(w.message).split()) for w in caught
                 if any(k in str(w.message).lower() for k in ("truncated", "corrupted"))]
    if not truncated and not path.name.lower().endswith(".gz"):
        # astropy warns only when a header is cut; a file cut inside the last HDU's data opens
        # silently, so compare where that data should end with the file size.
        size = path.stat().st_size
        for hdu in hdul:
            info = hdu.fileinfo()
            if info and info["datLoc"] + info["datSpan"] > size:
                truncated.append(f"HDU {hdu.name!r} data ends at byte {info['datLoc'] + info['datSpan']}, "
                                 f"the file has {size}")
                break
    if truncated:
        # astropy only warns; a file cut short is broken even when the HDUs we need survived.
        hdul.close()
        raise InvalidDataError(f"FITS file is truncated or corrupted ({truncated[0]})", source=str(path))
    for w in caught:  # pass anything else on unchanged
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    try:
        yield hdul
    except (OSError, EOFError) as exc:
        # Data units are read on first access; a file cut short fails there.
        raise InvalidDataError(f"FITS data could not be read, the file may be truncated ({exc})",
                               source=str(path)) from None
    finally:
        hdul.close()


def hdu_names(hdul) -> list[str]:
    return [h.name.upper() for h in hdul]


def get_hdu(hdul, name: str, source: str):
    """The HDU called ``name``; InvalidDataError naming the file and the HDU when it is missing."""
    if name.upper() not in hdu_names(hdul):
        raise InvalidDataError(f"missing HDU {name!r} (file has {hdu_names(hdul)})", source=source,
                               field=name)
    return hdul[name]


def get_data(hdu, source: str):
    """An HDU's data, with truncation reported as InvalidDataError."""
    try:
        data = hdu.data
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise InvalidDataError(f"data of HDU {hdu.name!r} could not be read ({exc})", source=source,
                               field=hdu.name) from None
    if data is None:
        raise InvalidDataError(f"HDU {hdu.name!r} has no data", source=source, field=hdu.name)
    return data


def get_column(table, name: str, source: str, object_id: str | None = None) -> np.ndarray:
    """Column ``name`` of a FITS table (case-insensitive); InvalidDataError when missing."""
    names = {n.upper(): n for n in table.columns.names}
    if name.upper() not in names:
        raise InvalidDataError("missing column", source=source, object_id=object_id, field=name)
    try:
        return np.asarray(table[names[name.upper()]])
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise InvalidDataError(f"column could not be read ({exc})", source=source,
                               object_id=object_id, field=name) from None


def as_str(value) -> str:
    """FITS string cells come back as str or bytes, padded with blanks."""
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("ascii", errors="replace")
    return str(value).strip()


def warn(message: str, source: str) -> None:
    warnings.warn(f"file {source}: {message}", ReaderWarning, stacklevel=3)


def finish(galaxies: Sequence[Galaxy], source: str, *, unique: bool = True) -> list[Galaxy]:
    """Validate every record against ``source``; warn once with the count of masked non-finite
    values; check object ids are unique. Every reader returns through here."""
    galaxies = list(galaxies)
    masked_objects, masked_values = 0, 0
    for galaxy in galaxies:
        counts = galaxy.validate(source=source)
        n = sum(counts.values())
        if n:
            masked_objects += 1
            masked_values += n
    if masked_values:
        warn(f"masked {masked_values} non-finite values (NaN/inf flux or ivar) in "
             f"{masked_objects} of {len(galaxies)} objects", source)
    if unique:
        check_unique_ids([g.object_id for g in galaxies], source=source)
    return galaxies
