"""What an embedding run is asked to do (:class:`EmbedConfig`) and its plan: one job per input tile, the
modality to embed and the metadata every part of the run carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from astroembed import __version__
from astroembed.data.healpix import healpix_index
from astroembed.data.mmu import find_tiles
from astroembed.data.records import InvalidDataError
from astroembed.data.validate import (
    check_tile,
    check_unique_across,
)
from astroembed.embed.store import _HIVE, MODALITIES, part_path

__all__ = ["EmbedConfig", "TileJob", "plan_tiles", "resolve_modality", "run_metadata"]


@dataclass
class EmbedConfig:
    """What to embed, with which model, where to.

    Attributes
    ----------
    model
        exported model folder (``config.json`` + ``model.safetensors``) or its run folder.
    data
        MMU survey: a tile file or a folder of ``healpix=<N>/*.hdf5`` tiles (one survey config); or a
        folder of JPEG/PNG colour cutouts (:mod:`astroembed.embed.folder`).
    out
        output folder for the Parquet dataset.
    modality
        "image", "spectrum", "photometry", or "auto" (the one the model embeds; for a model embedding both,
        the one the survey has).
    device
        "cpu", "cuda", "cuda:1", or "auto" (CUDA when available).
    precision
        "auto" (bf16 autocast where the device has bf16 units, 32-bit elsewhere; see
        :func:`astroembed.inference.load`), "32-true" or "bf16-mixed"; embeddings are float32 either way.
    batch_size
        objects per forward pass (and per read).
    num_workers
        DataLoader processes reading tiles (0 reads in the main process).
    overwrite
        re-embed tiles whose part exists instead of skipping them (or failing on a mismatch).
    bands_as
        declare that the survey's image planes, in order, are these bands (e.g. ``("g", "r",
        "z")`` for u,g,r cutouts through a g,r,z model); by default the ``image_band`` names must
        name the model's bands (planes are reordered or picked by name).
    """

    model: str
    data: str
    out: str
    modality: str = "auto"
    device: str = "auto"
    precision: str = "auto"
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
    if declared == "photometry" or callable(getattr(embedder, "embed_photometry", None)):
        mods.append("photometry")
    return mods


def _survey_modalities(jobs: Sequence[TileJob]) -> list[str]:
    columns = set().union(*(j.columns for j in jobs)) if jobs else set()
    return [m for m, c in (("image", "image_array"), ("spectrum", "spectrum_flux"), ("photometry", "photometry_flux"))
            if c in columns]


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
                         f"choose one with modality='image', 'spectrum' or 'photometry'")
    return present[0]


def run_metadata(embedder, modality: str) -> dict[str, str]:
    """Metadata shared by every part of a run (the per-tile keys are added by :func:`embed_tile`)."""
    return {"model_name": str(getattr(embedder, "name", "")), "model_hash": str(embedder.content_hash),
            # where the model was: lets a search embed a query file with the same model (informative only)
            "model_path": str(Path(getattr(embedder, "path", "")).resolve()),
            "modality": modality, "embed_dim": str(int(embedder.embed_dim)),
            # the resolved precision (32-true or bf16-mixed): a resumed run must not mix the two in one catalogue
            "precision": str(getattr(embedder, "precision", "32-true")),
            "astroembed_version": __version__}
