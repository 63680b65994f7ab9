"""Atomic file writes: a file on disk is always either its old complete version or its new complete one.

Every writer of astroembed (tiles, embedding parts, manifests, exported models, exports) writes to a
hidden temporary file beside its target, then renames it over the target. The rename is atomic on one
file system; the file and then its folder are fsynced, so the result survives a crash or a power cut.
An interrupted write leaves the old file (or nothing) and at worst a ``.*.tmp`` that readers ignore.

Example
-------
>>> with atomic_path("emb/healpix_12/part-0.parquet") as tmp:   # doctest: +SKIP
...     pyarrow.parquet.write_table(table, tmp)
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "commit", "temporary_path", "atomic_write_text"]


def temporary_path(path: str | os.PathLike) -> Path:
    """A hidden, unique name in ``path``'s folder (same file system, so the final rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: str | os.PathLike, path: str | os.PathLike, *, fsync: bool = True) -> Path:
    """Rename the complete file ``tmp`` over ``path``, fsyncing the file before and its folder after."""
    tmp, path = Path(tmp), Path(path)
    if fsync:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if fsync:
        _fsync_folder(path.parent)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; committed when the block ends without
    an error, removed when it raises (``path`` is then untouched). The folder is created if needed.

    ``mode`` (e.g. ``0o644``) is set on the file before the rename, so the finished file is never visible
    with other permissions; ``None`` keeps what the process's umask gives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        commit(tmp, path, fsync=fsync)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str, *, mode: int | None = None) -> Path:
    """Write a text file atomically (UTF-8); ``mode`` as for :func:`atomic_path`."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
