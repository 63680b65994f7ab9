"""Precomputed top-k neighbour tables: every object's nearest neighbours as a Parquet file.

A static web page or a notebook can then show "galaxies like this one" by reading a table, with no
model and no faiss at serving time. Rows are computed ``batch_size`` queries at a time, and
:func:`write_neighbour_table` streams each batch to disk, so memory stays one batch however large the
catalogue is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.records import check_unique_ids
from .index import VectorIndex
from .inputs import as_ids

__all__ = ["neighbour_table", "write_neighbour_table", "iter_neighbour_batches", "NEIGHBOUR_SCHEMA"]

NEIGHBOUR_SCHEMA = pa.schema([
    ("object_id", pa.string()),
    ("rank", pa.int32()),          # 1 = most similar
    ("neighbour_id", pa.string()),
    ("similarity", pa.float32()),
])


def iter_neighbour_batches(index: VectorIndex, embeddings: np.ndarray, ids: Sequence[str] | np.ndarray,
                           k: int = 10, exclude_self: bool = True, batch_size: int = 4096,
                           ra: np.ndarray | None = None, dec: np.ndarray | None = None,
                           exclude_within_arcsec: float | None = None) -> Iterator[pa.RecordBatch]:
    """Yield the neighbour table ``batch_size`` objects at a time (see :func:`neighbour_table`)."""
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (N, D) array, got shape {emb.shape}")
    ids = as_ids(ids, len(emb))
    check_unique_ids(ids)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(emb), batch_size):
        sl = slice(start, start + batch_size)
        batch_ids = ids[sl]
        # Validate here so a NaN embedding is reported by its object id, not by its row in the batch.
        index._prepare(emb[sl], batch_ids, "embeddings")
        res = index.search(emb[sl], k, exclude_ids=batch_ids if exclude_self else None,
                           query_ra=None if ra is None else np.asarray(ra)[sl],
                           query_dec=None if dec is None else np.asarray(dec)[sl],
                           exclude_within_arcsec=exclude_within_arcsec)
        found = res.indices >= 0  # padding (fewer than k neighbours exist) is left out of the table
        rows, ranks = np.nonzero(found)
        yield pa.RecordBatch.from_arrays(
            [pa.array(batch_ids[rows], pa.string()), pa.array(ranks + 1, pa.int32()),
             pa.array(res.ids[found], pa.string()), pa.array(res.similarity[found], pa.float32())],
            schema=NEIGHBOUR_SCHEMA)


def neighbour_table(index: VectorIndex, embeddings: np.ndarray, ids: Sequence[str] | np.ndarray, k: int = 10,
                    exclude_self: bool = True, batch_size: int = 4096, ra: np.ndarray | None = None,
                    dec: np.ndarray | None = None,
                    exclude_within_arcsec: float | None = None) -> pa.Table:
    """Top-k neighbours in ``index`` of every object ``ids[i]`` with embedding ``embeddings[i]``.

    Columns ``object_id, rank (1 = best), neighbour_id, similarity``; k rows per object (fewer only if
    the index holds fewer admissible objects). ``exclude_self`` drops each object's own id from its
    neighbours; ``exclude_within_arcsec`` with ``ra``/``dec`` also drops neighbours that close on the sky.
    """
    batches = list(iter_neighbour_batches(index, embeddings, ids, k, exclude_self, batch_size, ra, dec,
                                          exclude_within_arcsec))
    return pa.Table.from_batches(batches, schema=NEIGHBOUR_SCHEMA)


def write_neighbour_table(index: VectorIndex, embeddings: np.ndarray, ids: Sequence[str] | np.ndarray,
                          k: int, path: str | Path, exclude_self: bool = True, batch_size: int = 4096,
                          ra: np.ndarray | None = None, dec: np.ndarray | None = None,
                          exclude_within_arcsec: float | None = None) -> Path:
    """Stream :func:`neighbour_table` to a Parquet file batch by batch; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batches = iter_neighbour_batches(index, embeddings, ids, k, exclude_self, batch_size, ra, dec,
                                     exclude_within_arcsec)
    first = next(batches)  # raises on bad input before an empty file is left behind
    with pq.ParquetWriter(path, NEIGHBOUR_SCHEMA) as writer:
        writer.write_batch(first)
        for batch in batches:
            writer.write_batch(batch)
    return path
