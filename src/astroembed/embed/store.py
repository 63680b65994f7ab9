"""The embedding catalogue's format: layout, schema, atomic part writes, metadata, reading back.

    ids, ra, dec, vectors = read_embeddings("emb/ls", "image")                  # every row, sorted by id
    ids, ra, dec, vectors = read_embeddings("emb/ls", object_ids=survey_ids)    # rows in a given order

The runner that produces a catalogue (planning, batches, progress, resume) is
:mod:`astroembed.embed.catalog`; this module is what every reader and writer of the format shares.

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
``modality``, ``embed_dim``, ``precision`` (``32-true`` or ``bf16-mixed``, as resolved), ``astroembed_version``,
``source_tile`` (resolved path of the input tile),
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
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from astroembed.data.records import InvalidDataError
from astroembed.data.validate import (
    check_rows,
    check_unique_across,
)
from astroembed.files import atomic_path, atomic_write_text

__all__ = ["MANIFEST", "PART_NAME", "TILE_FOLDER", "check_writable_layout", "clean_stale_temporaries", "list_parts",
           "part_is_done", "part_metadata", "part_path", "part_table", "read_embeddings", "read_metadata",
           "tile_of_part", "write_manifest", "write_part_atomic"]

log = logging.getLogger(__name__)

MODALITIES = ("image", "spectrum", "photometry")
PART_NAME = "part-0.parquet"
MANIFEST = "_manifest.json"
# Hidden ('.'-prefixed) so that pyarrow.dataset ignores temporaries by default.
_TMP_PATTERN = re.compile(r"^\.part-\d+\.parquet\.[0-9a-f]+\.tmp$")
_HIVE = re.compile(r"^healpix=(-?\d+)$")  # MMU input tiles (and earlier catalogues)
TILE_FOLDER = "healpix_{}"
_TILE_GLOB, _LEGACY_TILE_GLOB = "healpix_*", "healpix=*"
_META_KEYS = ("model_name", "model_hash", "model_path", "modality", "embed_dim", "precision",
              "astroembed_version", "source_tile", "source_rows", "n_skipped")


def part_path(out, healpix: int) -> Path:
    """``<out>/healpix_<N>/part-0.parquet``."""
    return Path(out) / TILE_FOLDER.format(int(healpix)) / PART_NAME


def part_metadata(path: Path) -> dict[str, str]:
    try:
        raw = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise InvalidDataError(f"existing part cannot be read ({exc}); delete it or pass overwrite=True",
                               source=str(path)) from None
    return {k.decode(): v.decode() for k, v in raw.items() if k.decode() in _META_KEYS}


def part_is_done(job, meta: dict[str, str], overwrite: bool) -> bool:
    """True when ``job``'s part exists and was written by the same model from the same tile.

    Raises InvalidDataError naming the part when it exists but came from another model, modality,
    precision or tile (unless ``overwrite``, which re-embeds it).
    """
    path = Path(job.part)
    if overwrite or not path.is_file():
        return False
    have = part_metadata(path)
    expected = {**meta, "source_tile": job.tile, "source_rows": str(job.n_rows)}
    # Parts written before precision was recorded were 32-bit (the only precision then).
    have = {"precision": "32-true", **have}
    for key in ("model_hash", "modality", "precision", "source_tile", "source_rows"):
        if have.get(key) != expected[key]:
            raise InvalidDataError(
                f"existing part has {key}={have.get(key)!r} but this run has {expected[key]!r} (model "
                f"{meta['model_name']!r}); write to another folder or pass overwrite=True to replace it",
                source=str(path), field=key)
    return True


def check_writable_layout(out) -> None:
    """Refuse to resume into a catalogue written in the earlier hive layout (``healpix=<N>/``)."""
    legacy = sorted(Path(out).glob(f"{_LEGACY_TILE_GLOB}/{PART_NAME}"))
    if legacy:
        raise InvalidDataError(f"holds {len(legacy)} part(s) in the earlier hive layout (healpix=<N>/), which "
                               f"pandas and pyarrow cannot open; embed into a new folder (or rename each "
                               f"healpix=<N> folder to healpix_<N>) to resume", source=str(out))


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


def write_part_atomic(table: pa.Table, path) -> Path:
    """Write ``table`` to ``path`` so that ``path`` only ever holds a complete file (astroembed.files)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def write_manifest(out, jobs: Sequence, meta: dict[str, str]) -> Path:
    """Summarise the finished parts in ``<out>/_manifest.json`` (informative; resuming reads the parts)."""
    tiles = {}
    for job in jobs:
        have = part_metadata(Path(job.part))
        skipped = int(have.get("n_skipped", 0))
        tiles[str(job.healpix)] = {"part": str(Path(job.part).relative_to(out)), "source_tile": job.tile,
                                   "rows": job.n_rows - skipped, "skipped": skipped}
    manifest = {**meta, "embed_dim": int(meta["embed_dim"]), "n_tiles": len(tiles),
                "n_rows": sum(t["rows"] for t in tiles.values()),
                "n_skipped": sum(t["skipped"] for t in tiles.values()), "tiles": tiles}
    return atomic_write_text(Path(out) / MANIFEST, json.dumps(manifest, indent=2) + "\n")


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
        meta = part_metadata(part)
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


def part_table(object_id, ra, dec, healpix, embeddings: np.ndarray, metadata: dict[str, str],
               modality: str) -> pa.Table:
    """One tile's part: the columns and schema (with the run's metadata) every catalogue part has."""
    embed_dim = int(metadata["embed_dim"])
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[1] != embed_dim:
        raise ValueError(f"model returned embeddings of shape {emb.shape}, expected (N, {embed_dim})")
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), embed_dim)
    schema = pa.schema([("object_id", pa.string()), ("ra", pa.float64()), ("dec", pa.float64()),
                        ("healpix", pa.int64()),
                        (f"embedding_{modality}", pa.list_(pa.float32(), embed_dim))],
                       metadata={k.encode(): v.encode() for k, v in metadata.items()})
    return pa.Table.from_arrays([pa.array(np.asarray(object_id, dtype=object), pa.string()),
                                 pa.array(np.asarray(ra, np.float64)), pa.array(np.asarray(dec, np.float64)),
                                 pa.array(np.asarray(healpix, np.int64)), vectors], schema=schema)
