"""Reading a tile's rows for embedding, in batches that run on across tile boundaries.

Rows are read in blocks straight from the HDF5 tiles (not one record at a time) and checked with the
survey rules of :mod:`astroembed.data.validate` and against the model's inputs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from astroembed.data.mmu_conventions import good_spectrum_mask, tile_conventions
from astroembed.data.records import InvalidDataError, mask_bad_values
from astroembed.data.validate import (
    ModelInputs,
    check_rows,
    decode_strings,
)
from astroembed.embed.plan import TileJob
from astroembed.preprocess.photometry import band_columns

__all__ = ["TileBatches", "read_rows"]


class TileBatches(Dataset):
    """Item k = up to ``batch_size`` consecutive rows, as row slices (segments) of one or more tiles in
    order, read straight from HDF5 (a slice read per column is far cheaper than per-object reads).

    A batch runs on into the next tile rather than ending part-filled at each tile's end: a survey of
    many small tiles (the built-in one averages 8 objects per nside-16 tile) would otherwise run the
    model on batches of a few objects. Safe in DataLoader workers: handles are opened per process.
    """

    def __init__(self, jobs: Sequence[TileJob], modality: str, batch_size: int,
                 inputs: ModelInputs | None = None):
        self.jobs, self.modality, self.inputs = list(jobs), modality, inputs
        self.items: list[list[tuple[int, int, int]]] = []
        current: list[tuple[int, int, int]] = []
        filled = 0
        for j, job in enumerate(self.jobs):
            if job.n_rows == 0:
                current.append((j, 0, 0))  # an empty tile still gets its (empty) part
            start = 0
            while start < job.n_rows:
                take = min(batch_size - filled, job.n_rows - start)
                current.append((j, start, start + take))
                start, filled = start + take, filled + take
                if filled == batch_size:
                    self.items.append(current)
                    current, filled = [], 0
        if current:
            self.items.append(current)
        self._handle: tuple[int, int, h5py.File] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def _file(self, j: int) -> h5py.File:
        pid = os.getpid()
        if self._handle is None or self._handle[:2] != (pid, j):
            if self._handle is not None and self._handle[0] == pid:
                self._handle[2].close()
            self._handle = (pid, j, h5py.File(self.jobs[j].tile, "r"))
        return self._handle[2]

    def __getstate__(self):
        return {**self.__dict__, "_handle": None}

    def __getitem__(self, k: int) -> list[dict[str, Any]]:
        segments = [read_rows(self._file(j), self.jobs[j], self.modality, start, stop, self.inputs)
                    for j, start, stop in self.items[k]]
        if torch.utils.data.get_worker_info() is not None:
            # In a reader process the batch travels to the main process: as tensors it goes through
            # shared memory; numpy arrays would be pickled through a pipe (28 MB per 256 cutouts).
            for seg in segments:
                if "inputs" in seg:
                    seg["inputs"] = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in seg["inputs"])
        return segments


def read_rows(f: h5py.File, job: TileJob, modality: str, start: int, stop: int,
              inputs: ModelInputs | None = None) -> dict[str, Any]:
    """Rows ``start:stop`` of a tile: identifiers, positions, which rows have the modality, its inputs.

    The rows are checked with the survey rules of :mod:`astroembed.data.validate` and, given the model's
    ``inputs``, against the model: image planes are picked by band name, spectra must cover its grid.
    """
    n = stop - start
    ids = decode_strings(f["object_id"][start:stop]).astype(str)
    ra = f["ra"][start:stop].astype(np.float64)
    dec = f["dec"][start:stop].astype(np.float64)
    batch: dict[str, Any] = {
        "job": job.healpix, "start": start, "stop": stop, "object_id": ids, "ra": ra, "dec": dec,
        "healpix": (f["healpix"][start:stop].astype(np.int64) if "healpix" in f
                    else np.full(n, job.healpix, np.int64)),
    }
    check_rows({"ra": ra, "dec": dec}, ids, job.tile)
    inputs = inputs or ModelInputs()
    if modality == "image":
        return _read_images(f, job, batch, inputs, start, stop)
    if modality == "photometry":
        return _read_photometry(f, job, batch, inputs, start, stop)
    if "spectrum_flux" not in f:
        batch["present"] = np.zeros(n, bool)
        return batch
    wave = f["spectrum_lambda"][start:stop].astype(np.float64)
    flux = f["spectrum_flux"][start:stop].astype(np.float32)
    ivar = (f["spectrum_ivar"][start:stop].astype(np.float32) if "spectrum_ivar" in f
            else np.ones(flux.shape, np.float32))
    check_rows({"spectrum_lambda": wave, "spectrum_ivar": ivar}, ids, job.tile)
    pad = wave <= 0
    present = (~pad).any(axis=1)
    inputs.check_spectra(wave[present], ids[present], job.tile)
    # True = good, whatever the tile's polarity (MMU's tiles and astroembed's store True = bad pixel).
    mask = (good_spectrum_mask(f["spectrum_mask"][start:stop], tile_conventions(Path(job.tile), f),
                               source=job.tile) if "spectrum_mask" in f else np.ones(flux.shape, bool))
    mask &= ~pad
    # Same masking and padding convention as MMUDataset (non-finite -> flux 0, ivar 0, masked), so
    # embedding sees what training saw.
    for i in np.flatnonzero(present):
        flux[i], ivar[i], mask[i], _ = mask_bad_values(flux[i], ivar[i], mask[i], "spectrum",
                                                 {"source": job.tile, "object_id": ids[i]})
    wavelength = np.where(pad, -1.0, wave).astype(np.float32)
    batch["present"] = present
    batch["inputs"] = (flux[present], ivar[present], wavelength[present], mask[present])
    return batch


def _read_photometry(f: h5py.File, job: TileJob, batch: dict[str, Any], inputs: ModelInputs, start: int,
                     stop: int) -> dict[str, Any]:
    """The photometry part of :func:`read_rows`: astroembed's ``photometry_*`` columns, as (flux, ivar) in the
    model's bands (matched by name; a model band the tile lacks has ivar 0, i.e. masked). An object is
    present when it has a usable flux (finite, ivar > 0) in any of the model's bands."""
    ids = batch["object_id"]
    if "photometry_flux" not in f:
        batch["present"] = np.zeros(len(ids), bool)
        return batch
    flux = f["photometry_flux"][start:stop].astype(np.float32)
    ivar = (f["photometry_ivar"][start:stop].astype(np.float32) if "photometry_ivar" in f
            else np.ones(flux.shape, np.float32))
    check_rows({"photometry_ivar": ivar}, ids, job.tile)
    names = decode_strings(f["photometry_band"][start:stop]) if "photometry_band" in f else None
    named = (names != "").any(axis=1) if names is not None else np.ones(len(ids), bool)
    for i in np.flatnonzero(named):
        flux[i], ivar[i], _, _ = mask_bad_values(flux[i], ivar[i], np.ones(flux.shape[1], bool), "photometry",
                                                 {"source": job.tile, "object_id": ids[i]})
    model_bands = getattr(inputs, "photometry_bands", None)
    if model_bands is not None and names is not None and named.any():
        first = int(np.flatnonzero(named)[0])
        columns = band_columns(tuple(names[first]), model_bands, job.tile, ids[first])
        keep = (columns >= 0)[None]
        flux = np.where(keep, flux[:, columns.clip(min=0)], 0.0).astype(np.float32)
        ivar = np.where(keep, ivar[:, columns.clip(min=0)], 0.0).astype(np.float32)
    present = named & ((ivar > 0) & np.isfinite(flux)).any(axis=1)
    batch["present"] = present
    batch["inputs"] = (flux[present], ivar[present])
    return batch


def _read_images(f: h5py.File, job: TileJob, batch: dict[str, Any], inputs: ModelInputs, start: int,
                 stop: int) -> dict[str, Any]:
    """The image part of :func:`read_rows`: checked rows, planes in the model's band order."""
    ids = batch["object_id"]
    if "image_array" not in f:
        batch["present"] = np.zeros(len(ids), bool)
        return batch
    bands = decode_strings(f["image_band"][start:stop])
    # ivar is read only to enforce ivar >= 0 (the image model does not use it): a negative variance
    # means a broken file, whose pixels should not be embedded as if they were fine.
    ivar = f["image_ivar"][start:stop] if "image_ivar" in f else None
    check_rows({"image_band": bands, "image_ivar": ivar}, ids, job.tile)
    present = (bands != "").any(axis=1)
    batch["present"] = present
    images = f["image_array"][start:stop]
    images = images if present.all() else images[present]  # (no copy when all present)
    rows = [tuple(r) for r in bands[present]]
    if rows:
        # One band list per survey config (the MMU writer enforces it), so one plane order per batch.
        other = next((k for k, r in enumerate(rows) if r != rows[0]), None)
        if other is not None:
            raise InvalidDataError(f"band names {list(rows[other])} differ from those of other rows of this "
                                   f"tile ({list(rows[0])})", source=job.tile, object_id=ids[present][other],
                                   field="image_band")
        planes = inputs.image_planes(rows[0], job.tile, ids[present][0])
        if planes is not None:
            images = images[:, planes]
    batch["inputs"] = (images,)
    return batch
