"""Embed a whole survey with an exported model and write the embeddings beside the catalogue as Parquet.

    config = EmbedConfig(model="runs/image/model", data="mmu/legacysurveys/default", out="emb/ls")
    embed_catalog(config)
    ids, ra, dec, vectors = read_embeddings("emb/ls", "image")

Output layout (one part per input HEALPix tile, like the input)::

    <out>/healpix_<N>/part-0.parquet     object_id (string), ra, dec (float64), healpix (int64),
                                         embedding_<modality> (fixed-size list<float32>[D])
    <out>/_manifest.json                 summary of the run (rows, skipped objects per tile)

The tile folders are deliberately *not* hive-style (``healpix=<N>``): pandas, pyarrow and Dask would
then add a ``healpix`` partition key of their own type (int32, or a dictionary/category) that clashes
with the int64 column in the files and fails to merge. With plain folder names every reader (pandas,
pyarrow, polars, DuckDB, Dask, astropy) sees the one int64 ``healpix`` column; each part holds one
tile, so its row-group statistics let filters on ``healpix`` skip the other parts' data, and
:mod:`astroembed.embed.tables` selects parts by tile or sky region by their folder names alone.
Catalogues written with the earlier hive folders are still read; embedding into one is refused.

Each part's schema metadata records ``model_name``, ``model_hash`` (SHA-256 of the weights),
``modality``, ``embed_dim``, ``astroembed_version``, ``source_tile`` (resolved path of the input tile),
``source_rows`` (rows in that tile) and ``n_skipped``.

Resumable: a part is written to a hidden temporary file in its folder, fsynced and renamed, so a part
exists under its final name only when complete; the parts themselves say which tiles are done (the
manifest is a summary, never consulted). A rerun skips a tile whose part has the same model hash,
modality, source tile and source row count, and fails with an error naming the part when any of these
differ (``overwrite=True`` re-embeds instead). Temporary files left by a killed run are removed at
start. Two runs must not write to the same ``out`` at the same time.

Objects lacking the modality are skipped and counted (``n_skipped`` in each part and the manifest):
an image row whose ``image_band`` names are all empty (the writer's fill for "no image"), a spectrum
row whose wavelengths are all padding (``spectrum_lambda <= 0``), or any row of a tile without the
modality's columns.

Memory is bounded by one tile's embeddings plus a few batches of input: tiles are read in batches of
``batch_size`` consecutive rows, which run on from one tile into the next so that small tiles still
make full batches (by ``num_workers`` DataLoader processes, which overlap reading with the model).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset

from astroembed import __version__
from astroembed.data.healpix import healpix_index
from astroembed.data.mmu import find_tiles
from astroembed.data.mmu_conventions import good_spectrum_mask, tile_conventions
from astroembed.data.records import InvalidDataError, _mask_bad
from astroembed.data.validate import (
    ModelInputs,
    check_rows,
    check_tile,
    check_unique_across,
    decode_strings,
)
from astroembed.files import atomic_path, atomic_write_text

__all__ = [
    "EmbedConfig",
    "TileJob",
    "embed_catalog",
    "read_embeddings",
    "read_metadata",
    "part_path",
    "list_parts",
    "tile_of_part",
    "plan_tiles",
    "resolve_modality",
    "embed_tile",
    "write_part_atomic",
]

log = logging.getLogger(__name__)

MODALITIES = ("image", "spectrum")
PART_NAME = "part-0.parquet"
MANIFEST = "_manifest.json"
# Hidden ('.'-prefixed) so that pyarrow.dataset ignores temporaries by default.
_TMP_PATTERN = re.compile(r"^\.part-\d+\.parquet\.[0-9a-f]+\.tmp$")
_HIVE = re.compile(r"^healpix=(-?\d+)$")  # MMU input tiles (and earlier catalogues)
TILE_FOLDER = "healpix_{}"
_TILE_GLOB, _LEGACY_TILE_GLOB = "healpix_*", "healpix=*"
_META_KEYS = ("model_name", "model_hash", "model_path", "modality", "embed_dim", "astroembed_version",
              "source_tile", "source_rows", "n_skipped")


@dataclass
class EmbedConfig:
    """What to embed, with which model, where to.

    Attributes:
        model: exported model folder (``config.json`` + ``model.safetensors``) or its run folder.
        data: MMU survey: a tile file or a folder of ``healpix=<N>/*.hdf5`` tiles (one survey config).
        out: output folder for the Parquet dataset.
        modality: "image", "spectrum", or "auto" (the one the model embeds; for a model embedding both,
            the one the survey has).
        device: "cpu", "cuda", "cuda:1", or "auto" (CUDA when available).
        batch_size: objects per forward pass (and per read).
        num_workers: DataLoader processes reading tiles (0 reads in the main process).
        overwrite: re-embed tiles whose part exists instead of skipping them (or failing on a mismatch).
        bands_as: declare that the survey's image planes, in order, are these bands (e.g. ``("g", "r",
            "z")`` for u,g,r cutouts through a g,r,z model); by default the ``image_band`` names must
            name the model's bands (planes are reordered or picked by name).
    """

    model: str
    data: str
    out: str
    modality: str = "auto"
    device: str = "auto"
    batch_size: int = 256
    num_workers: int = 0
    overwrite: bool = False
    bands_as: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.model, self.data, self.out = str(self.model), str(self.data), str(self.out)
        if self.bands_as is not None:
            self.bands_as = tuple(str(b).strip() for b in self.bands_as)
        if self.modality not in MODALITIES + ("auto",):
            raise ValueError(f"modality must be one of {MODALITIES + ('auto',)}, got {self.modality!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if int(self.num_workers) < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        self.batch_size, self.num_workers = int(self.batch_size), int(self.num_workers)


@dataclass
class TileJob:
    """One input tile and the part it becomes."""

    healpix: int
    tile: str
    n_rows: int
    part: str
    columns: frozenset = field(default_factory=frozenset)


# ------------------------------------------------------------------------------------------ planning

def part_path(out, healpix: int) -> Path:
    """``<out>/healpix_<N>/part-0.parquet``."""
    return Path(out) / TILE_FOLDER.format(int(healpix)) / PART_NAME


def _tile_healpix(tile: Path, f: h5py.File) -> int:
    match = _HIVE.match(tile.parent.name)
    if match:
        return int(match.group(1))
    # Not in the hive layout: the tile must hold a single HEALPix pixel to map onto one part.
    if "healpix" in f:
        values = np.unique(f["healpix"][:])
    else:
        values = np.unique(healpix_index(f["ra"][:], f["dec"][:]))
    if len(values) != 1:
        raise InvalidDataError(f"holds objects of {len(values)} HEALPix pixels and is not in a "
                               f"'healpix=<N>' folder; write it with astroembed's MMU writer first",
                               source=str(tile), field="healpix")
    return int(values[0])


def plan_tiles(data, out) -> list[TileJob]:
    """Every input tile, its row count and columns, and its output part (sorted by HEALPix index).

    Each tile's structure is checked (:func:`astroembed.data.validate.check_tile`) and object ids must be
    unique over the whole survey."""
    jobs: dict[int, TileJob] = {}
    all_ids, sources = [], []
    for tile in find_tiles(data):
        try:
            with h5py.File(tile, "r") as f:
                ids = check_tile(f, str(tile))
                n, hp, columns = len(ids), _tile_healpix(tile, f), frozenset(f.keys())
        except OSError as exc:
            raise InvalidDataError(f"cannot be read as HDF5 ({exc})", source=str(tile)) from None
        all_ids.append(ids)
        sources.append(str(tile))
        if hp in jobs:
            raise InvalidDataError(f"HEALPix tile {hp} appears twice (also {jobs[hp].tile}); point the data "
                                   f"path at one survey config folder", source=str(tile))
        jobs[hp] = TileJob(hp, str(Path(tile).resolve()), n, str(part_path(out, hp)), columns)
    check_unique_across(all_ids, sources)
    return [jobs[k] for k in sorted(jobs)]


def _supported_modalities(embedder) -> list[str]:
    """Modalities an embedder can embed, from its ``modality`` and the methods it offers."""
    declared_all = getattr(embedder, "modalities", None)  # an aligned (CLIP) embedder lists both
    if declared_all:
        return [m for m in MODALITIES if m in declared_all]
    mods = []
    declared = getattr(embedder, "modality", None)
    if declared == "image" or callable(getattr(embedder, "embed_image", None)):
        mods.append("image")
    if declared == "spectrum" or callable(getattr(embedder, "embed_spectrum", None)):
        mods.append("spectrum")
    return mods


def _survey_modalities(jobs: Sequence[TileJob]) -> list[str]:
    columns = set().union(*(j.columns for j in jobs)) if jobs else set()
    return [m for m, c in (("image", "image_array"), ("spectrum", "spectrum_flux")) if c in columns]


def resolve_modality(embedder, requested: str, jobs: Sequence[TileJob]) -> str:
    """The modality to embed: the requested one (checked against the model), or the one 'auto' implies."""
    supported = _supported_modalities(embedder)
    if not supported:
        raise ValueError(f"model {getattr(embedder, 'name', '?')} embeds no known modality "
                         f"(modality={getattr(embedder, 'modality', None)!r})")
    if requested != "auto":
        if requested not in supported:
            raise ValueError(f"model {getattr(embedder, 'name', '?')} embeds {supported}, not {requested!r}")
        return requested
    if len(supported) == 1:
        return supported[0]
    present = [m for m in supported if m in _survey_modalities(jobs)]
    if len(present) != 1:
        raise ValueError(f"model embeds {supported} and the survey has {_survey_modalities(jobs)}: "
                         f"choose one with modality='image' or 'spectrum'")
    return present[0]


def run_metadata(embedder, modality: str) -> dict[str, str]:
    """Metadata shared by every part of a run (the per-tile keys are added by :func:`embed_tile`)."""
    return {"model_name": str(getattr(embedder, "name", "")), "model_hash": str(embedder.content_hash),
            # where the model was: lets a search embed a query file with the same model (informative only)
            "model_path": str(Path(getattr(embedder, "path", "")).resolve()),
            "modality": modality, "embed_dim": str(int(embedder.embed_dim)),
            "astroembed_version": __version__}


def _part_metadata(path: Path) -> dict[str, str]:
    try:
        raw = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise InvalidDataError(f"existing part cannot be read ({exc}); delete it or pass overwrite=True",
                               source=str(path)) from None
    return {k.decode(): v.decode() for k, v in raw.items() if k.decode() in _META_KEYS}


def part_is_done(job: TileJob, meta: dict[str, str], overwrite: bool) -> bool:
    """True when ``job``'s part exists and was written by the same model from the same tile.

    Raises InvalidDataError naming the part when it exists but came from another model, modality or
    tile (unless ``overwrite``, which re-embeds it).
    """
    path = Path(job.part)
    if overwrite or not path.is_file():
        return False
    have = _part_metadata(path)
    expected = {**meta, "source_tile": job.tile, "source_rows": str(job.n_rows)}
    for key in ("model_hash", "modality", "source_tile", "source_rows"):
        if have.get(key) != expected[key]:
            raise InvalidDataError(
                f"existing part has {key}={have.get(key)!r} but this run has {expected[key]!r} (model "
                f"{meta['model_name']!r}); write to another folder or pass overwrite=True to replace it",
                source=str(path), field=key)
    return True


def clean_stale_temporaries(out) -> list[Path]:
    """Remove temporary part files a killed run left behind; returns what was removed."""
    removed = []
    for folder in [*Path(out).glob(_TILE_GLOB), *Path(out).glob(_LEGACY_TILE_GLOB)]:
        for tmp in folder.iterdir():
            if _TMP_PATTERN.match(tmp.name):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run", len(removed))
    return removed


# ------------------------------------------------------------------------------------------- reading

class _TileBatches(Dataset):
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
        flux[i], ivar[i], mask[i], _ = _mask_bad(flux[i], ivar[i], mask[i], "spectrum",
                                                 {"source": job.tile, "object_id": ids[i]})
    wavelength = np.where(pad, -1.0, wave).astype(np.float32)
    batch["present"] = present
    batch["inputs"] = (flux[present], ivar[present], wavelength[present], mask[present])
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


def _first(batch):
    return batch


# ----------------------------------------------------------------------------------------- embedding

def _embed_fn(embedder, modality: str) -> Callable[..., np.ndarray]:
    if modality == "image":
        fn = getattr(embedder, "embed_image", None) or embedder.embed
        return lambda images: fn(images)
    return lambda flux, ivar, wavelength, mask: embedder.embed_spectrum(flux, ivar, wavelength, mask=mask)


class _TileAccumulator:
    """Collects one tile's batches (in order) and turns them into a table."""

    def __init__(self, job: TileJob):
        self.job = job
        self.columns: dict[str, list] = {"object_id": [], "ra": [], "dec": [], "healpix": [], "embedding": []}
        self.rows_seen = 0
        self.n_skipped = 0

    def add(self, batch: dict[str, Any], embedding: np.ndarray) -> None:
        if batch["start"] != self.rows_seen:
            raise RuntimeError(f"tile {self.job.tile}: batch at row {batch['start']} arrived, expected "
                               f"row {self.rows_seen}")  # would lose or duplicate rows: never write it
        present = batch["present"]
        for name in ("object_id", "ra", "dec", "healpix"):
            self.columns[name].append(batch[name][present])
        self.columns["embedding"].append(embedding)
        self.rows_seen = batch["stop"]
        self.n_skipped += int((~present).sum())

    @property
    def complete(self) -> bool:
        return self.rows_seen == self.job.n_rows

    def table(self, meta: dict[str, str], embed_dim: int, modality: str) -> pa.Table:
        def cat(name, dtype):
            parts = self.columns[name]
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

        emb = (np.concatenate(self.columns["embedding"]) if self.columns["embedding"]
               else np.zeros((0, embed_dim), np.float32))
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[1] != embed_dim:
            raise ValueError(f"model returned embeddings of shape {emb.shape}, expected (N, {embed_dim})")
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), embed_dim)
        metadata = {**meta, "source_tile": self.job.tile, "source_rows": str(self.job.n_rows),
                    "n_skipped": str(self.n_skipped)}
        schema = pa.schema([("object_id", pa.string()), ("ra", pa.float64()), ("dec", pa.float64()),
                            ("healpix", pa.int64()),
                            (f"embedding_{modality}", pa.list_(pa.float32(), embed_dim))],
                           metadata={k.encode(): v.encode() for k, v in metadata.items()})
        return pa.Table.from_arrays([pa.array(cat("object_id", object), pa.string()),
                                     pa.array(cat("ra", np.float64)), pa.array(cat("dec", np.float64)),
                                     pa.array(cat("healpix", np.int64)), vectors], schema=schema)


def write_part_atomic(table: pa.Table, path) -> Path:
    """Write ``table`` to ``path`` so that ``path`` only ever holds a complete file (astroembed.files)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def _embed_segments(fn, segments: Sequence[dict[str, Any]], embed_dim: int) -> list[np.ndarray]:
    """Embeddings (n_present, D) of each segment of a batch, in as few forward passes as possible:
    consecutive segments whose inputs have the same shape (cutout size, spectrum length) run together."""
    out = [np.zeros((0, embed_dim), np.float32)] * len(segments)
    groups: list[list[int]] = []
    for i, seg in enumerate(segments):
        if not seg["present"].any():
            continue
        shapes = [x.shape[1:] for x in seg["inputs"]]
        if groups and [x.shape[1:] for x in segments[groups[-1][-1]]["inputs"]] == shapes:
            groups[-1].append(i)
        else:
            groups.append([i])
    for group in groups:
        inputs = (segments[group[0]]["inputs"] if len(group) == 1 else
                  tuple(np.concatenate(parts) for parts in zip(*(segments[i]["inputs"] for i in group))))
        with torch.inference_mode():
            emb = np.asarray(fn(*inputs), dtype=np.float32)
        bounds = np.cumsum([0] + [len(segments[i]["inputs"][0]) for i in group])
        for i, lo, hi in zip(group, bounds[:-1], bounds[1:]):
            out[i] = emb[lo:hi]
    return out


def _run_batches(embedder, modality: str, jobs: Sequence[TileJob], batches: Iterable[list[dict[str, Any]]],
                 meta: dict[str, str], on_tile: Callable[[TileJob, int, int], None] | None = None) -> None:
    """Embed batches (lists of tile segments) arriving in tile order and write each tile's part as soon
    as it is complete."""
    fn = _embed_fn(embedder, modality)
    embed_dim = int(embedder.embed_dim)
    by_hp = {j.healpix: j for j in jobs}
    acc: _TileAccumulator | None = None
    for segments in batches:
        for batch, embedding in zip(segments, _embed_segments(fn, segments, embed_dim)):
            job = by_hp[batch["job"]]
            if acc is None or acc.job is not job:
                if acc is not None:
                    raise RuntimeError(f"tile {acc.job.tile} ended at row {acc.rows_seen} of {acc.job.n_rows}")
                acc = _TileAccumulator(job)
            if batch["stop"] > batch["start"]:
                acc.add(batch, embedding)
            if acc.complete:
                write_part_atomic(acc.table(meta, embed_dim, modality), job.part)
                if acc.n_skipped:
                    log.info("%s: skipped %d object(s) without %s", job.tile, acc.n_skipped, modality)
                if on_tile is not None:
                    on_tile(job, acc.rows_seen - acc.n_skipped, acc.n_skipped)
                acc = None


def embed_tile(embedder, job: TileJob, modality: str, batch_size: int, meta: dict[str, str],
               overwrite: bool = False, bands_as: Sequence[str] | None = None) -> tuple[int, int]:
    """Embed one tile in the calling process and write its part; returns (rows written, rows skipped).

    A part already written by the same model is left alone (returns its counts), so a task that is run
    twice (a retried distributed task) neither duplicates nor loses rows.
    """
    if part_is_done(job, meta, overwrite):
        have = _part_metadata(Path(job.part))
        skipped = int(have.get("n_skipped", 0))
        return job.n_rows - skipped, skipped
    counts = []
    dataset = _TileBatches([job], modality, batch_size, ModelInputs.of(embedder, bands_as))
    _run_batches(embedder, modality, [job], (dataset[k] for k in range(len(dataset))), meta,
                 on_tile=lambda _, n, s: counts.append((n, s)))
    return counts[0]


# ------------------------------------------------------------------------------------------ progress

class _Progress:
    """Rich progress bar of tiles done and objects/s (a no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.objects, self.start = 0, time.perf_counter()
        self.bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("[bold]embedding tiles"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())
            self.task = self.bar.add_task("tiles", total=total, completed=done, rate="")

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False

    def tile_done(self, n_objects: int) -> None:
        self.objects += n_objects
        if self.bar is not None:
            rate = self.objects / max(time.perf_counter() - self.start, 1e-9)
            self.bar.update(self.task, advance=1, rate=f"{rate:,.0f} objects/s")


# ------------------------------------------------------------------------------------------- driver

def _prepare(config: EmbedConfig, embedder) -> tuple[list[TileJob], list[TileJob], str, dict[str, str]]:
    """Plan the run: all tiles, those still to do, the modality and the run metadata."""
    legacy = sorted(Path(config.out).glob(f"{_LEGACY_TILE_GLOB}/{PART_NAME}"))
    if legacy:
        raise InvalidDataError(f"holds {len(legacy)} part(s) in the earlier hive layout (healpix=<N>/), which "
                               f"pandas and pyarrow cannot open; embed into a new folder (or rename each "
                               f"healpix=<N> folder to healpix_<N>) to resume", source=str(config.out))
    jobs = plan_tiles(config.data, config.out)
    modality = resolve_modality(embedder, config.modality, jobs)
    meta = run_metadata(embedder, modality)
    Path(config.out).mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(config.out)
    todo = [j for j in jobs if not part_is_done(j, meta, config.overwrite)]
    return jobs, todo, modality, meta


def write_manifest(out, jobs: Sequence[TileJob], meta: dict[str, str]) -> Path:
    """Summarise the finished parts in ``<out>/_manifest.json`` (informative; resuming reads the parts)."""
    tiles = {}
    for job in jobs:
        have = _part_metadata(Path(job.part))
        skipped = int(have.get("n_skipped", 0))
        tiles[str(job.healpix)] = {"part": str(Path(job.part).relative_to(out)), "source_tile": job.tile,
                                   "rows": job.n_rows - skipped, "skipped": skipped}
    manifest = {**meta, "embed_dim": int(meta["embed_dim"]), "n_tiles": len(tiles),
                "n_rows": sum(t["rows"] for t in tiles.values()),
                "n_skipped": sum(t["skipped"] for t in tiles.values()), "tiles": tiles}
    return atomic_write_text(Path(out) / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def embed_catalog(config: EmbedConfig, progress: bool = True) -> Path:
    """Embed every object of ``config.data`` that has the modality; returns the output folder.

    Resumes an interrupted run (finished tiles are skipped), writes one Parquet part per tile atomically,
    and streams each tile in batches of ``config.batch_size``. See the module docstring for the layout.
    """
    from astroembed.inference import load

    embedder = load(config.model, device=config.device)
    jobs, todo, modality, meta = _prepare(config, embedder)
    out = Path(config.out)
    if todo:
        dataset = _TileBatches(todo, modality, config.batch_size, ModelInputs.of(embedder, config.bands_as))
        # batch_size=None: items are already batches; in-order delivery keeps each tile's rows in order.
        loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=config.num_workers,
                            collate_fn=_first, prefetch_factor=2 if config.num_workers else None)
        with _Progress(progress, len(jobs), len(jobs) - len(todo)) as bar:
            _run_batches(embedder, modality, todo, loader, meta, on_tile=lambda job, n, s: bar.tile_done(n))
    write_manifest(out, jobs, meta)
    return out


# ------------------------------------------------------------------------------------------- reading

def tile_of_part(part) -> int:
    """The HEALPix tile a part holds, from its folder name (``healpix_<N>``, or the earlier ``healpix=<N>``)."""
    return int(Path(part).parent.name[len("healpix_"):])


def list_parts(out) -> list[Path]:
    parts = sorted(Path(out).glob(f"{_TILE_GLOB}/{PART_NAME}"), key=tile_of_part)
    if not parts:  # a catalogue written before the tile folders lost their '=' (see the module docstring)
        parts = sorted(Path(out).glob(f"{_LEGACY_TILE_GLOB}/{PART_NAME}"), key=tile_of_part)
    if not parts:
        raise InvalidDataError(f"no embedding parts ({_TILE_GLOB}/{PART_NAME}) found", source=str(out))
    return parts


def read_metadata(out) -> dict[str, Any]:
    """The run metadata shared by all parts (model name and hash, modality, embed_dim, version), plus
    ``n_parts``, ``n_skipped`` and ``source_tiles``. Raises when parts come from different models."""
    common: dict[str, Any] | None = None
    skipped, sources = 0, []
    for part in list_parts(out):
        meta = _part_metadata(part)
        shared = {k: meta.get(k) for k in ("model_name", "model_hash", "model_path", "modality", "embed_dim",
                                           "astroembed_version")}
        if common is None:
            common = shared
        elif shared["model_hash"] != common["model_hash"] or shared["modality"] != common["modality"]:
            raise InvalidDataError(f"parts come from different models or modalities ({shared['model_hash']} "
                                   f"{shared['modality']} vs {common['model_hash']} {common['modality']})",
                                   source=str(part), field="model_hash")
        skipped += int(meta.get("n_skipped", 0))
        sources.append(meta.get("source_tile"))
    assert common is not None
    return {**common, "embed_dim": int(common["embed_dim"]), "n_parts": len(sources), "n_skipped": skipped,
            "source_tiles": sources}


def read_embeddings(out, modality: str | None = None, object_ids=None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The embeddings under ``out``: (object_id, ra, dec, embeddings (N, D) float32).

    Parameters
    ----------
    out
        The catalogue folder written by :func:`embed_catalog`.
    modality
        Picks the ``embedding_<modality>`` column (default: the one the parts hold). Use
        :func:`read_metadata` for the model that produced them.
    object_ids
        ``None``: every row, sorted by object_id. A sequence of ids: exactly those rows, in that order
        (the join of a catalogue with labels or a split); an id the catalogue lacks is an
        ``InvalidDataError`` naming it.
    """
    meta = read_metadata(out)  # also checks that all parts come from one model
    modality = modality or meta["modality"]
    column = f"embedding_{modality}"
    dim = meta["embed_dim"]
    parts, tables = list_parts(out), []
    for part in parts:
        try:
            table = pq.read_table(part, columns=["object_id", "ra", "dec", column])
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise InvalidDataError(f"cannot read columns object_id, ra, dec, {column} ({exc})", source=str(part),
                                   field=column) from None
        _check_part(table, column, dim, str(part))
        tables.append(table)
    check_unique_across([t.column("object_id").to_numpy(zero_copy_only=False).astype(str) for t in tables],
                        [str(p) for p in parts])
    table = pa.concat_tables(tables).sort_by("object_id")
    vectors = table.column(column).combine_chunks()
    emb = vectors.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)
    ids = np.asarray(table.column("object_id").to_pylist(), dtype=str)
    ra, dec = table.column("ra").to_numpy(), table.column("dec").to_numpy()
    if object_ids is None:
        return ids, ra, dec, emb
    wanted = np.asarray(object_ids, dtype=str)
    rows = np.searchsorted(ids, wanted).clip(max=max(len(ids) - 1, 0))
    missing = wanted[(len(ids) == 0) | (ids[rows] != wanted)] if len(wanted) else wanted[:0]
    if missing.size:
        raise InvalidDataError(f"{missing.size} object(s) not in the embedding catalogue (first: {missing[0]!r})",
                               source=str(out), object_id=str(missing[0]), field="object_id")
    return wanted, ra[rows], dec[rows], emb[rows]


def _check_part(table: pa.Table, column: str, dim: int, source: str) -> None:
    """An embedding part as the index and search read it: vectors of the run's dimension, finite, at
    valid positions (the survey rules of :mod:`astroembed.data.validate`)."""
    ids = table.column("object_id").to_numpy(zero_copy_only=False).astype(str)
    check_rows({"ra": table.column("ra").to_numpy(), "dec": table.column("dec").to_numpy()}, ids, source)
    vectors = table.column(column).combine_chunks()
    if not pa.types.is_fixed_size_list(vectors.type) or vectors.type.list_size != dim:
        raise InvalidDataError(f"type {vectors.type}, expected vectors of dimension {dim}", source=source,
                               field=column)
    emb = vectors.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        raise InvalidDataError(f"non-finite embedding ({int(bad.sum())} in this part)", source=source,
                               object_id=str(ids[np.flatnonzero(bad)[0]]), field=column)
