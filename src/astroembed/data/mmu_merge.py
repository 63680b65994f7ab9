"""Writing into an MMU survey that already exists: append to it, never replace it in silence.

:class:`~astroembed.data.mmu.MMUWriter` asks :func:`read_existing` what a survey config already holds
(object ids and the tile of each, the image shape and bands, the kind of every label column) so that
new objects are checked against it: an id already in the survey is an error naming the id and the tile
that holds it, and an image shape or a label kind that differs from the survey's is an error as before.

Writers of one survey config take turns: :func:`read_existing` takes an exclusive lock (``flock``) on
``<config>/.astroembed-write.lock`` and the writer holds it until it closes, so two ``astroembed convert``
runs into the same survey (parallel jobs of a cluster) cannot both copy a tile and let the last rename
drop the other's objects; the second waits, then sees the first one's ids. The lock dies with its
process, so a crash never leaves the survey locked; the file is removed when released.

A tile that gains rows is merged atomically: :func:`start_merged_tile` copies the existing tile to the
``*.tmp`` file the writer appends to, and the writer renames it over the old tile only when every row is
written. A crash (or a bad object) during the merge leaves the old tile as it was; the ``*.tmp`` is
deleted on an exception and overwritten by the next run otherwise. Each tile is replaced on its own: a
crash between two renames leaves every tile whole, some with the new objects and some without (a rerun
then names the ids already added).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .healpix import healpix_index
from .mmu_conventions import RESERVED, STRING
from .mmu_read import MMUSurvey, decode_strings, find_tiles
from .records import InvalidDataError, check_unique_ids

__all__ = ["IF_EXISTS", "ExistingSurvey", "read_existing", "start_merged_tile"]

try:
    import fcntl
except ImportError:  # Windows: no flock; writers are not serialised there
    fcntl = None

IF_EXISTS = ("append", "error")
LOCK_NAME = ".astroembed-write.lock"
_ROWS_PER_COPY = 1024  # rows copied at a time when a column is rebuilt: memory stays bounded


class WriteLock:
    """Exclusive ``flock`` on ``<config_dir>/.astroembed-write.lock``; blocks while another writer holds it."""

    def __init__(self, config_dir: Path):
        config_dir.mkdir(parents=True, exist_ok=True)
        self.path = config_dir / LOCK_NAME
        while True:
            self._file = open(self.path, "a")  # noqa: SIM115 - held open as the lock until release()
            if fcntl is None:
                return
            fcntl.flock(self._file, fcntl.LOCK_EX)
            # The previous holder removes the file as it releases: a lock on that removed file guards
            # nothing, so take the lock again on the file now at the path.
            try:
                if os.stat(self.path).st_ino == os.fstat(self._file.fileno()).st_ino:
                    return
            except FileNotFoundError:
                pass
            self._file.close()

    def release(self) -> None:
        if self._file is None:
            return
        if fcntl is not None:
            self.path.unlink(missing_ok=True)  # while still held: no one can be holding a newer file
        self._file.close()  # closing releases the flock
        self._file = None


@dataclass
class ExistingSurvey:
    """What a survey config on disk already holds, as far as new objects must agree with it, and the
    write lock the writer holds until it closes."""

    tile_of: dict[str, Path] = field(default_factory=dict)  # object id -> tile file holding it
    image_shape: tuple | None = None                       # ((bands, H, W), band names) as MMUWriter keys it
    label_kinds: dict[str, tuple] = field(default_factory=dict)  # column -> (dtype, fill) as MMUWriter's
    lock: WriteLock | None = None


def read_existing(config_dir: Path, if_exists: str = "append") -> ExistingSurvey:
    """Lock ``config_dir`` for writing and read the ids, image shape and label kinds of its tiles.

    The returned ``lock`` must be released by the caller when its writing is done (or abandoned); on an
    error here it is released before raising.

    Parameters
    ----------
    config_dir
        ``<root>/<survey>/<config>``.
    if_exists
        ``"append"``: return what is there so the writer adds to it; ``"error"``: refuse (InvalidDataError)
        when the folder holds any tile.
    """
    if if_exists not in IF_EXISTS:
        raise ValueError(f"if_exists must be one of {IF_EXISTS}, got {if_exists!r}")
    lock = WriteLock(config_dir)
    try:
        return _read_tiles(config_dir, if_exists, ExistingSurvey(lock=lock))
    except BaseException:
        lock.release()
        raise


def _read_tiles(config_dir: Path, if_exists: str, existing: ExistingSurvey) -> ExistingSurvey:
    try:
        tiles = find_tiles(config_dir)
    except InvalidDataError:  # an empty folder (or one without tiles) holds nothing to keep
        return existing
    survey = MMUSurvey(config_dir, tiles=tiles)  # checks every tile opens and its columns' row counts
    if if_exists == "error":
        raise InvalidDataError(f"a survey is already here ({len(survey)} objects in {len(tiles)} tiles); "
                               "append to it (--if-exists append) or choose another --out/--survey/--config",
                               source=str(config_dir))
    existing.tile_of = {oid: tiles[i] for oid, i in zip(survey.object_ids.tolist(), survey._file_index.tolist())}
    if len(existing.tile_of) != len(survey):
        check_unique_ids(survey.object_ids, source=str(config_dir))
    for tile in tiles:
        with h5py.File(tile, "r") as f:
            if existing.image_shape is None and "image_array" in f and "image_band" in f:
                bands = next((tuple(r) for r in decode_strings(f["image_band"][:]).tolist() if any(r)), None)
                if bands is not None:
                    existing.image_shape = (tuple(f["image_array"].shape[1:]), bands)
            for name in set(f.keys()) - RESERVED:
                existing.label_kinds.setdefault(name, _label_kind(f[name].dtype))
    return existing


def _label_kind(dtype: np.dtype) -> tuple:
    """The (dtype, fill) MMUWriter would have chosen for a label column stored with ``dtype``."""
    if dtype.kind in ("S", "U", "O"):
        return (STRING, "")
    if dtype == np.int8 or dtype.kind == "b":
        return (np.int8, -1)
    if dtype.kind in ("i", "u"):
        return (np.int64, -1)
    return (np.float64, np.nan)


def start_merged_tile(tile: Path, tmp: Path) -> tuple[h5py.File, int]:
    """Copy ``tile`` to ``tmp`` and open the copy for appending; returns the open file and its row count.

    Every column must grow along the object axis (and padded spectra along the pixel axis), and text
    must be variable-length so that longer ids or labels are not cut: columns of other writers that are
    contiguous or fixed-size, or fixed-length byte strings, are rebuilt in the copy (the tile itself is
    only read).
    """
    shutil.copyfile(tile, tmp)
    handle = h5py.File(tmp, "a")
    try:
        if "object_id" not in handle:
            raise InvalidDataError("existing tile has no object_id column; cannot append to it",
                                   source=str(tile), field="object_id")
        n = handle["object_id"].shape[0]
        if "healpix" not in handle and "ra" in handle and "dec" in handle:
            # Readers derive a missing healpix column from ra/dec; the new rows bring one, so the old
            # rows need theirs, or they would read as the fill value -1 ("no position").
            tiles = healpix_index(handle["ra"][:], handle["dec"][:]).astype(np.int64)
            handle.create_dataset("healpix", data=tiles, maxshape=(None,), chunks=(max(1, min(len(tiles), 8192)),))
        for name in list(handle.keys()):
            item = handle[name]
            if not isinstance(item, h5py.Dataset) or item.ndim == 0:
                raise InvalidDataError("existing tile holds something other than a per-object column; "
                                       "cannot append to it", source=str(tile), field=name)
            if item.maxshape != (None,) * item.ndim or item.dtype.kind == "S":
                _rebuild_growable(handle, name)
    except BaseException:
        handle.close()
        tmp.unlink(missing_ok=True)
        raise
    return handle, int(n)


def _rebuild_growable(handle: h5py.File, name: str) -> None:
    """Replace column ``name`` by a chunked copy whose every axis can grow (text as UTF-8 strings)."""
    old = handle[name]
    text = old.dtype.kind == "S"
    dtype = STRING if text else old.dtype
    row_shape = old.shape[1:]
    new = handle.create_dataset(
        name + ".rebuilt", shape=old.shape, maxshape=(None,) * old.ndim, dtype=dtype,
        chunks=(max(1, min(1024, 65536 // max(1, int(np.prod(row_shape, dtype=np.int64)) * 4))),)
        + tuple(max(1, d) for d in row_shape),
        fillvalue=old.fillvalue if not text else "")
    for start in range(0, old.shape[0], _ROWS_PER_COPY):
        block = old[start:start + _ROWS_PER_COPY]
        new[start:start + len(block)] = (np.char.decode(block, "utf-8").astype(object) if text else block)
    for key, value in old.attrs.items():
        new.attrs[key] = value
    del handle[name]
    handle.move(name + ".rebuilt", name)
