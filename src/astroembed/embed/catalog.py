"""Embed a whole survey with an exported model and write the embeddings beside the catalogue as Parquet.

    config = EmbedConfig(model="runs/image/model", data="mmu/legacysurveys/default", out="emb/ls")
    embed_catalog(config)
    ids, ra, dec, vectors = read_embeddings("emb/ls", "image")

This module is the runner: plan the tiles (:mod:`~astroembed.embed.plan`), read them in batches
(:mod:`~astroembed.embed.tile_reader`), embed, write one part per tile and resume after a crash; the
catalogue's layout and schema are :mod:`~astroembed.embed.store`.

Resumable: the parts themselves say which tiles are done (see :mod:`~astroembed.embed.store`); a rerun
skips a tile whose part has the same model hash, modality, source tile and source row count, and fails
with an error naming the part when any of these differ (``overwrite=True`` re-embeds instead).
Temporary files left by a killed run are removed at start. Two runs must not write to the same ``out``
at the same time.

Memory is bounded by one tile's embeddings plus a few batches of input: tiles are read in batches of
``batch_size`` consecutive rows, which run on from one tile into the next so that small tiles still
make full batches (by ``num_workers`` DataLoader processes, which overlap reading with the model).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader

from astroembed.data.validate import (
    ModelInputs,
)
from astroembed.embed.plan import EmbedConfig, TileJob, plan_tiles, resolve_modality, run_metadata
from astroembed.embed.store import (
    check_writable_layout,
    clean_stale_temporaries,
    part_is_done,
    part_metadata,
    part_table,
    write_manifest,
    write_part_atomic,
)
from astroembed.embed.tile_reader import TileBatches

__all__ = ["EmbedConfig", "Progress", "embed_catalog", "embed_tile", "prepare_run", "resolve_modality",
           "run_metadata"]

log = logging.getLogger(__name__)


def _embed_fn(embedder, modality: str) -> Callable[..., np.ndarray]:
    if modality == "image":
        fn = getattr(embedder, "embed_image", None) or embedder.embed
        return lambda images: fn(images)
    if modality == "photometry":  # the reader hands fluxes in the model's bands (missing ones ivar 0)
        return lambda flux, ivar: embedder.embed_photometry(flux, ivar)
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
        metadata = {**meta, "source_tile": self.job.tile, "source_rows": str(self.job.n_rows),
                    "n_skipped": str(self.n_skipped)}
        return part_table(cat("object_id", object), cat("ra", np.float64), cat("dec", np.float64),
                          cat("healpix", np.int64), emb, metadata, modality)


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
        have = part_metadata(Path(job.part))
        skipped = int(have.get("n_skipped", 0))
        return job.n_rows - skipped, skipped
    counts = []
    dataset = TileBatches([job], modality, batch_size, ModelInputs.of(embedder, bands_as))
    _run_batches(embedder, modality, [job], (dataset[k] for k in range(len(dataset))), meta,
                 on_tile=lambda _, n, s: counts.append((n, s)))
    return counts[0]


class Progress:
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


def _batch_as_is(batch):
    return batch


def prepare_run(config: EmbedConfig, embedder) -> tuple[list[TileJob], list[TileJob], str, dict[str, str]]:
    """Plan the run: all tiles, those still to do, the modality and the run metadata."""
    check_writable_layout(config.out)
    jobs = plan_tiles(config.data, config.out)
    modality = resolve_modality(embedder, config.modality, jobs)
    meta = run_metadata(embedder, modality)
    Path(config.out).mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(config.out)
    todo = [j for j in jobs if not part_is_done(j, meta, config.overwrite)]
    return jobs, todo, modality, meta


def embed_catalog(config: EmbedConfig, progress: bool = True) -> Path:
    """Embed every object of ``config.data`` that has the modality; returns the output folder.

    ``config.data`` may also be a folder of JPEG/PNG colour cutouts (:mod:`astroembed.embed.folder`).

    Resumes an interrupted run (finished tiles are skipped), writes one Parquet part per tile atomically,
    and streams each tile in batches of ``config.batch_size``. See the module docstring for the layout.
    """
    from astroembed.data.readers.image_folder import is_image_folder
    from astroembed.inference import load

    if is_image_folder(Path(config.data)):  # JPEG/PNG cutouts: one part, no tiles (astroembed.embed.folder)
        from astroembed.embed.folder import embed_image_folder

        return embed_image_folder(config)
    embedder = load(config.model, device=config.device, precision=config.precision)
    jobs, todo, modality, meta = prepare_run(config, embedder)
    out = Path(config.out)
    if todo:
        dataset = TileBatches(todo, modality, config.batch_size, ModelInputs.of(embedder, config.bands_as))
        # batch_size=None: items are already batches; in-order delivery keeps each tile's rows in order.
        loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=config.num_workers,
                            collate_fn=_batch_as_is, prefetch_factor=2 if config.num_workers else None)
        with Progress(progress, len(jobs), len(jobs) - len(todo)) as bar:
            _run_batches(embedder, modality, todo, loader, meta, on_tile=lambda job, n, s: bar.tile_done(n))
    write_manifest(out, jobs, meta)
    return out
