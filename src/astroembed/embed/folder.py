"""Embed a folder of JPEG/PNG colour cutouts (Galaxy Zoo style) into an embedding catalogue.

A folder has no sky positions and no HEALPix tiles, so its catalogue is one part in the tile folder of
"position unknown" (``healpix_-1``, :data:`~astroembed.data.healpix.UNKNOWN_TILE`) with NaN ra/dec, the
documented unknown position; object ids are the file stems (unique, as the folder reader requires). The
part carries the same schema and metadata as a survey's parts, with the folder as its ``source_tile``
and its image count as ``source_rows``, so a rerun by the same model skips it and one by another model
is refused (or re-embedded with ``overwrite``), exactly as for a survey.

Images are decoded in batches (:func:`~astroembed.data.readers.image_folder.load_rgb`, 0-255 float
planes) and given to the model as they are stored: the model's own saved preprocessing (centre crop and
resampling of the JPEG frame, then the RGB scaling) is applied by ``embed``, as for any caller.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astroembed.data.healpix import UNKNOWN_TILE
from astroembed.data.readers.image_folder import list_images, load_rgb
from astroembed.data.records import InvalidDataError, check_unique_ids
from astroembed.embed.plan import EmbedConfig, TileJob, resolve_modality, run_metadata
from astroembed.embed.store import (
    check_writable_layout,
    clean_stale_temporaries,
    part_is_done,
    part_path,
    part_table,
    write_manifest,
    write_part_atomic,
)

__all__ = ["embed_image_folder"]


def _embed_batch(embed, files: list[Path], ids: np.ndarray) -> np.ndarray:
    """Embeddings of one batch of files; cutouts of different sizes go through the model one size at a time
    (each is standardised to the model's frame, but a batch must be one array)."""
    images = [load_rgb(f) for f in files]
    shapes = sorted({im.shape for im in images})
    out = [None] * len(images)
    for shape in shapes:
        rows = [i for i, im in enumerate(images) if im.shape == shape]
        vectors = embed(np.stack([images[i] for i in rows]), object_ids=ids[rows], source=str(files[rows[0]].parent))
        for i, vector in zip(rows, vectors):
            out[i] = vector
    return np.stack(out)


def embed_image_folder(config: EmbedConfig, embedder=None) -> Path:
    """Embed every image of the folder ``config.data`` with ``config.model``; returns ``config.out``.

    Parameters
    ----------
    config
        What to embed: ``data`` is the image folder; ``modality`` must be "image" or "auto";
        ``batch_size``, ``device``, ``precision``, ``overwrite`` and ``bands_as`` as for a survey.
    embedder
        An already loaded model (``astroembed.load``); None loads ``config.model``.

    Raises
    ------
    InvalidDataError
        A file that cannot be decoded (naming it), duplicate file stems, or an existing part written by
        another model or from another folder.
    ValueError
        A model that embeds no images, or a modality other than image.
    """
    from astroembed.inference import load

    folder, out = Path(config.data), Path(config.out)
    files = list_images(folder)
    if not files:
        raise InvalidDataError("no .jpg/.jpeg/.png/.tif images in the folder", source=str(folder))
    ids = np.array([p.stem for p in files])
    check_unique_ids(ids, source=str(folder))
    embedder = embedder or load(config.model, device=config.device, precision=config.precision)
    job = TileJob(UNKNOWN_TILE, str(folder.resolve()), len(files), str(part_path(out, UNKNOWN_TILE)),
                  frozenset({"image_array"}))
    modality = resolve_modality(embedder, config.modality, [job])
    if modality != "image":
        raise ValueError(f"a folder of colour cutouts holds images; the model was asked for {modality!r}")
    meta = run_metadata(embedder, modality)
    check_writable_layout(out)
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out)
    if not part_is_done(job, meta, config.overwrite):
        embed_fn = getattr(embedder, "embed_image", None) or embedder.embed

        def embed(images, object_ids, source):
            return embed_fn(images, bands_as=config.bands_as, object_ids=object_ids, source=source)

        vectors = np.concatenate([_embed_batch(embed, files[i:i + config.batch_size], ids[i:i + config.batch_size])
                                  for i in range(0, len(files), config.batch_size)])
        nan = np.full(len(files), np.nan)
        table = part_table(ids, nan, nan, np.full(len(files), UNKNOWN_TILE), vectors,
                           {**meta, "source_tile": job.tile, "source_rows": str(job.n_rows), "n_skipped": "0"},
                           modality)
        write_part_atomic(table, job.part)
    write_manifest(out, [job], meta)
    return out
