"""Embed a survey on a Dask cluster: one task per unfinished tile, the same parts as :func:`embed_catalog`.

    embed_catalog_dask(config)                                   # a LocalCluster of 2 worker processes
    embed_catalog_dask(config, "tcp://scheduler:8786")           # an existing cluster
    embed_catalog_dask(config, client)                           # an existing distributed.Client

The driver plans the run (and fails early on a part written by another model) exactly as the
single-process run does; each task embeds one tile with :func:`astroembed.embed.catalog.embed_tile`
and writes its part with the same atomic writer, so a killed or retried task never leaves a partial
or duplicated part, and a rerun resumes.

Each worker process loads the model once (kept in a per-process cache keyed by model path, weights
hash and device) and runs torch with one thread: a Dask worker is one process with one thread, and
one torch thread makes the results bitwise equal to a single-process run that also uses
``torch.set_num_threads(1)`` (the batches are the same row slices of the same tiles in both runs).
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import torch

from astroembed.embed.catalog import Progress, embed_tile, prepare_run
from astroembed.embed.plan import EmbedConfig, TileJob
from astroembed.embed.store import write_manifest

__all__ = ["embed_catalog_dask", "worker_embedder", "worker_model_loads"]

log = logging.getLogger(__name__)

# Per worker process: (model path, weights hash, device, precision) -> embedder, plus how many times each was loaded
# (reported back to the driver so tests can check "once per worker").
_MODELS: dict[tuple[str, str, str, str], Any] = {}
_LOADS: dict[tuple[str, str, str, str], int] = {}


def worker_embedder(model: str, model_hash: str, device: str, precision: str = "auto"):
    """The embedder for this process, loaded on first use and reused by every later task."""
    key = (model, model_hash, device, precision)
    if key not in _MODELS:
        from astroembed.inference import load

        torch.set_num_threads(1)
        embedder = load(model, device=device, precision=precision)
        if embedder.content_hash != model_hash:
            raise RuntimeError(f"model {model} changed while embedding (weights hash {embedder.content_hash}, "
                               f"the run started with {model_hash})")
        _MODELS[key] = embedder
        _LOADS[key] = _LOADS.get(key, 0) + 1
    return _MODELS[key]


def worker_model_loads() -> dict[tuple[str, str, str, str], int]:
    """How many times this process loaded each model (``client.run(worker_model_loads)`` asks every worker)."""
    return dict(_LOADS)


def _tile_task(job: TileJob, model: str, device: str, modality: str, batch_size: int, meta: dict[str, str],
               overwrite: bool, bands_as: tuple[str, ...] | None = None,
               precision: str = "auto") -> dict[str, Any]:
    key = (model, meta["model_hash"], device, precision)
    embedder = worker_embedder(*key)
    torch.set_num_threads(1)  # another library in the worker may have changed it
    rows, skipped = embed_tile(embedder, job, modality, batch_size, meta, overwrite=overwrite, bands_as=bands_as)
    return {"healpix": job.healpix, "rows": rows, "skipped": skipped, "pid": os.getpid(),
            "model_loads": _LOADS[key]}


def embed_catalog_dask(config: EmbedConfig, client_or_address=None, n_workers: int = 2,
                       progress: bool = True) -> Path:
    """Embed ``config.data`` with one Dask task per tile not yet done; returns the output folder.

    Parameters
    ----------
    config
        as for :func:`astroembed.embed.catalog.embed_catalog` (``num_workers`` is unused: each
        task reads its tile in its worker).
    client_or_address
        a ``distributed.Client``, a scheduler address (``"tcp://host:8786"``), or None
        to start a ``LocalCluster(n_workers, threads_per_worker=1, processes=True)`` for this call.
    n_workers
        worker processes of the local cluster (ignored with a client or address).
    progress
        show a rich progress bar (tiles done, objects/s).

    The model path and the data/output folders must be reachable under the same paths on every worker.
    Task results (per-tile row counts, worker pid, model loads in that worker) are logged at debug level.
    """
    from astroembed.inference import load
    from astroembed.optional import require

    dask_distributed = require("distributed", "dask", "distributed embedding")
    Client, LocalCluster, as_completed = (dask_distributed.Client, dask_distributed.LocalCluster,
                                          dask_distributed.as_completed)

    # The driver loads the model on the CPU only to resolve the modality and hash the weights.
    embedder = load(config.model, device="cpu", precision=config.precision)  # its precision goes in the metadata
    jobs, todo, modality, meta = prepare_run(config, embedder)
    del embedder
    model = str(Path(config.model).resolve())
    out = Path(config.out)

    cluster = client = None
    if client_or_address is None:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    elif isinstance(client_or_address, str):
        client = Client(client_or_address)
    else:
        client = client_or_address
    try:
        if todo:
            futures = [client.submit(_tile_task, job, model, config.device, modality, config.batch_size, meta,
                                     config.overwrite, config.bands_as, config.precision,
                                     key=f"embed-tile-{job.healpix}-{uuid.uuid4().hex[:12]}", pure=False)
                       for job in todo]
            with Progress(progress, len(jobs), len(jobs) - len(todo)) as bar:
                for future in as_completed(futures):
                    result = future.result()  # re-raises a task's error here, naming its tile
                    log.debug("tile %s: %s", result["healpix"], result)
                    bar.tile_done(result["rows"])
        write_manifest(out, jobs, meta)
    finally:
        if client is not client_or_address:
            client.close()
        if cluster is not None:
            cluster.close()
    return out
