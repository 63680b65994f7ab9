"""Export an embedding catalogue (or a tile / sky-region selection of it) to one file for TOPCAT, astropy
and spreadsheet users.

    export_catalogue("emb/image", "emb_image.fits")                   # format from the suffix
    export_catalogue("emb/image", "near_m101.vot", cone=(210.8, 54.35, 2.0))

=========  =====================================================================================
fits       binary table (HDU 1, EXTNAME EMBEDDINGS); the embedding is one vector column (TFORM ``<D>E``);
           header: MODEL, MODELHSH (SHA-256 of the weights), MODALITY, EMBEDDIM, AEVERSN
votable    VOTable 1.4 (TABLEDATA); the embedding is a ``float`` FIELD of arraysize D; the model as
           PARAMs model_name, model_hash, modality, embed_dim, astroembed_version; ra/dec carry UCDs
           ``pos.eq.ra;meta.main`` / ``pos.eq.dec;meta.main`` so TOPCAT plots them on the sky
csv        one column per embedding component (``embedding_<modality>_<k>``: CSV has no array type);
           the model in leading ``# key: value`` lines (``pandas.read_csv(f, comment="#")``)
hdf5       astropy's HDF5 table (dataset ``embeddings``, the embedding a (D,) float32 field); the model in
           the dataset's attributes, readable with h5py alone
=========  =====================================================================================

Columns: object_id, ra, dec (deg), healpix, embedding_<modality>; rows sorted by object_id. Float32
embeddings are written exactly (text formats use the shortest decimal that reads back to the same float32).
The selection is held in memory: about N x D x 4 bytes (1 GB for 2 million 128-d vectors).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astroembed.embed.store import read_metadata
from astroembed.embed.tables import read_table
from astroembed.files import atomic_path

__all__ = ["FORMATS", "export_catalogue", "format_from_suffix"]

FORMATS = ("fits", "votable", "csv", "hdf5")
_SUFFIXES = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".xml": "votable", ".vot": "votable",
             ".votable": "votable", ".csv": "csv", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5"}
# FITS keywords are at most 8 characters: the metadata keys under their FITS names, with a comment each.
_FITS_KEYS = {"model_name": ("MODEL", "astroembed model that produced the embeddings"),
              "model_hash": ("MODELHSH", "SHA-256 of the model weights (model.safetensors)"),
              "modality": ("MODALITY", "what was embedded: image, spectrum or photometry"),
              "embed_dim": ("EMBEDDIM", "length of each embedding vector"),
              "astroembed_version": ("AEVERSN", "astroembed version that wrote the catalogue")}
_UCDS = {"object_id": "meta.id;meta.main", "ra": "pos.eq.ra;meta.main", "dec": "pos.eq.dec;meta.main"}
HDF5_PATH = "embeddings"


def format_from_suffix(path) -> str:
    """The export format a file name implies (.fits, .xml/.vot, .csv, .h5/.hdf5)."""
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format from {Path(path).name!r}: pass one of {FORMATS} "
                         f"(or name the file {', '.join(sorted(_SUFFIXES))})")
    return fmt


def _astropy_table(embeddings, tiles, cone):
    """(astropy Table of the selection, the run metadata as strings)."""
    from astropy import units as u
    from astropy.table import Table

    meta = read_metadata(embeddings)  # also refuses parts of different models
    run = {key: str(meta[key]) for key in _FITS_KEYS}
    column = f"embedding_{meta['modality']}"
    arrow = read_table(embeddings, tiles=tiles, cone=cone, columns=["object_id", "ra", "dec", "healpix", column])
    dim = int(meta["embed_dim"])
    vectors = arrow.column(column).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    table = Table()
    table["object_id"] = np.asarray(arrow.column("object_id").to_pylist(), dtype=str)
    table["ra"] = arrow.column("ra").to_numpy() * u.deg
    table["dec"] = arrow.column("dec").to_numpy() * u.deg
    table["healpix"] = arrow.column("healpix").to_numpy().astype(np.int64)
    table[column] = vectors.astype(np.float32).reshape(-1, dim)
    for name, text in (("object_id", "catalogue object id"), ("ra", "right ascension (ICRS)"),
                       ("dec", "declination (ICRS)"), ("healpix", "HEALPix tile (nside 16, NESTED)"),
                       (column, f"{meta['modality']} embedding of model {run['model_name']}")):
        table[name].description = text
    return table, run


def _write_fits(table, run, path: Path) -> None:
    from astropy.io import fits

    hdu = fits.table_to_hdu(table)
    hdu.name = "EMBEDDINGS"
    for key, (card, comment) in _FITS_KEYS.items():
        hdu.header[card] = (int(run[key]) if key == "embed_dim" else run[key], comment)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)


def _write_votable(table, run, path: Path) -> None:
    from astropy.io.votable import from_table, writeto
    from astropy.io.votable.tree import Param

    votable = from_table(table)
    element = votable.get_first_table()
    for name, ucd in _UCDS.items():
        element.get_field_by_id(name).ucd = ucd
    for key, value in run.items():
        param = (Param(votable, name=key, datatype="int", value=int(value)) if key == "embed_dim" else
                 Param(votable, name=key, datatype="char", arraysize="*", value=value))
        element.params.append(param)
    writeto(votable, str(path))


def _write_csv(table, run, path: Path) -> None:
    import pandas as pd

    column = f"embedding_{run['modality']}"
    frame = pd.DataFrame({name: np.asarray(table[name]) for name in ("object_id", "ra", "dec", "healpix")})
    vectors = np.asarray(table[column])
    components = pd.DataFrame(vectors, columns=[f"{column}_{k}" for k in range(vectors.shape[1])])
    with open(path, "w", newline="") as fh:
        for key, value in run.items():
            fh.write(f"# {key}: {value}\n")
        # float32 cells are written as their shortest round-tripping decimal (pandas' default repr)
        pd.concat([frame, components], axis=1).to_csv(fh, index=False)


def _write_hdf5(table, run, path: Path) -> None:
    import h5py

    table.meta.update(run)
    table.write(path, path=HDF5_PATH, format="hdf5", serialize_meta=True)  # keeps units and descriptions
    with h5py.File(path, "r+") as f:  # and the model as plain attributes, for h5py users
        f[HDF5_PATH].attrs.update(run)


_WRITERS = {"fits": _write_fits, "votable": _write_votable, "csv": _write_csv, "hdf5": _write_hdf5}


def export_catalogue(embeddings, out, fmt: str | None = None, tiles=None, cone=None, overwrite: bool = False
                     ) -> tuple[Path, int]:
    """Write the catalogue at ``embeddings`` (or its ``tiles`` / ``cone`` = (RA, Dec, radius) deg selection)
    to ``out`` as ``fmt`` (default: from ``out``'s suffix); returns (path, rows written).

    The file appears complete or not at all (written under a temporary name, then renamed).
    """
    out = Path(out)
    fmt = format_from_suffix(out) if fmt is None else fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {FORMATS}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    table, run = _astropy_table(embeddings, tiles, cone)
    with atomic_path(out) as tmp:
        _WRITERS[fmt](table, run, tmp)
    return out, len(table)
