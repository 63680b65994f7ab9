"""Catalogue embedding: stream a survey through an exported model into Parquet beside the catalogue.

:func:`embed_catalog` runs in one process (the runner: ``catalog``, ``plan``, ``tile_reader``);
:func:`embed_catalog_dask` runs one task per tile on a Dask cluster and writes the same parts. The
format both write and every reader shares (layout, schema, atomic part writes, :func:`read_embeddings`)
is ``store``; ``tables`` and ``export`` open it for others.
"""

from astroembed.embed.catalog import EmbedConfig, embed_catalog
from astroembed.embed.store import read_embeddings, read_metadata

__all__ = ["EmbedConfig", "embed_catalog", "embed_catalog_dask", "read_embeddings", "read_metadata"]


def embed_catalog_dask(*args, **kwargs):
    """See :func:`astroembed.embed.distributed.embed_catalog_dask` (imported on use: dask is heavy)."""
    from astroembed.embed.distributed import embed_catalog_dask as run

    return run(*args, **kwargs)
