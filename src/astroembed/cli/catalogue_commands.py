"""`astroembed embed`, `index`, `export`, `search`: embedding catalogues and similarity search."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer
from rich.console import Console

from .base import app, console, fail, print_json, require


@app.command()
def embed(
    model: Path = typer.Option(..., "--model", help="Exported model folder (config.json + model.safetensors) "
                               "or its run folder."),
    data: Path = typer.Option(..., "--data", help="MMU survey: a tile file or a folder of healpix=<N> tiles; or a "
                              "folder of JPEG/PNG colour cutouts."),
    out: Path = typer.Option(..., "--out", help="Output folder of the Parquet embeddings (one part per tile)."),
    modality: str = typer.Option("auto", "--modality",
                                 help="image, spectrum, photometry, or auto (what the model embeds)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 autocast where the CPU/GPU has bf16 "
                                  "units, else 32-bit), 32-true, bf16-mixed. Embeddings are float32 either way."),
    batch_size: int = typer.Option(256, "--batch-size", help="Objects per forward pass."),
    num_workers: int = typer.Option(0, "--num-workers", help="Reader processes (single-process run only)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Re-embed tiles already written (e.g. by another model)."),
    dask_address: Optional[str] = typer.Option(None, "--dask-address", help="Scheduler of a running Dask cluster."),
    dask_workers: Optional[int] = typer.Option(None, "--dask-workers",
                                               help="Start a local Dask cluster of N processes."),
    bands_as: Optional[str] = typer.Option(None, "--bands-as", help="Declare the image planes, in order, to be "
                                           "these bands (e.g. g,r,z for u,g,r cutouts through a g,r,z model)."),
):
    """Embed every object of a survey into Parquet beside the catalogue; a rerun resumes."""
    from ..data.records import InvalidDataError
    from ..embed import EmbedConfig, embed_catalog, embed_catalog_dask, read_metadata

    if dask_address and dask_workers:
        fail(ValueError("give --dask-address or --dask-workers, not both"))
    if dask_address or dask_workers:
        require("dask", feature="distributed embedding")
    try:
        config = EmbedConfig(model=str(model), data=str(data), out=str(out), modality=modality, device=device,
                             precision=precision, batch_size=batch_size, num_workers=num_workers,
                             overwrite=overwrite,
                             bands_as=bands_as.split(",") if bands_as else None)
        if dask_address or dask_workers:
            path = embed_catalog_dask(config, dask_address, n_workers=dask_workers or 2)
        else:
            path = embed_catalog(config)
        meta = read_metadata(path)
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    console.print(f"wrote {meta['modality']} embeddings (dim {meta['embed_dim']}, model {meta['model_name']} "
                  f"{meta['model_hash'][:12]}) for {meta['n_parts']} tiles to {path}; "
                  f"{meta['n_skipped']} objects without {meta['modality']} skipped")


@app.command()
def index(
    embeddings: List[Path] = typer.Option(..., "--embeddings", help="Embedding catalogue folder(s), one per modality."),
    out: Path = typer.Option(..., "--out", help="Index folder to write."),
    kind: str = typer.Option("auto", "--kind", help="auto, flat (exact), hnsw or ivfpq."),
    neighbours: int = typer.Option(0, "--neighbours", help="Also write top-K neighbour tables (Parquet) per modality."),
):
    """Build a vector index (faiss, cosine) over embedding catalogues."""
    from ..data.records import InvalidDataError
    from ..search.catalog_search import CatalogSearch, build_index

    try:
        path = build_index(embeddings, out, kind=kind)
        search = CatalogSearch(path)
        for modality in search.modalities:
            info = search.manifest["modalities"][modality]
            console.print(f"{modality}: {info['count']} vectors of dim {info['dim']} in a {info['kind']} index")
            if neighbours:
                from ..embed.store import read_embeddings
                from ..search.neighbours import write_neighbour_table

                ids, ra, dec, vectors = read_embeddings(info["embeddings"], modality)
                table = path / f"neighbours_{modality}.parquet"
                write_neighbour_table(search.index(modality), vectors, ids, neighbours, table)
                console.print(f"  top-{neighbours} neighbours of every object -> {table}")
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    console.print(f"wrote {path}")


@app.command()
def export(
    embeddings: Path = typer.Option(..., "--embeddings", help="Embedding catalogue folder (astroembed embed)."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    fmt: Optional[str] = typer.Option(None, "--format", help="fits, votable, csv or hdf5 (default: from --out)."),
    tiles: Optional[List[int]] = typer.Option(None, "--tile", help="Only this HEALPix tile (repeatable)."),
    cone: Optional[Tuple[float, float, float]] = typer.Option(None, "--cone", help="Only objects within RADIUS "
                                                             "deg of RA DEC (deg): --cone RA DEC RADIUS."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
):
    """Write an embedding catalogue (or a tile / sky-region selection) to one FITS, VOTable, CSV or HDF5 file."""
    from ..data.records import InvalidDataError
    from ..embed.export import export_catalogue

    try:
        path, n = export_catalogue(embeddings, out, fmt, tiles=tiles or None, cone=cone, overwrite=overwrite)
    except (InvalidDataError, ValueError, FileNotFoundError, FileExistsError) as exc:
        fail(exc)
    console.print(f"wrote {n} embeddings to {path}")


@app.command()
def search(
    index_dir: Path = typer.Option(..., "--index", help="Index folder (astroembed index)."),
    object_id: Optional[str] = typer.Option(None, "--id", help="Query: an object id of the catalogue."),
    ra: Optional[float] = typer.Option(None, "--ra", help="Query: the catalogued object at this RA (deg) ..."),
    dec: Optional[float] = typer.Option(None, "--dec", help="... and Dec (deg)."),
    file: Optional[Path] = typer.Option(None, "--file", help="Query: a FITS/JPEG cutout or spectrum file."),
    k: int = typer.Option(10, "--k", help="Number of neighbours."),
    query_modality: Optional[str] = typer.Option(None, "--query-modality", help="image, spectrum or photometry."),
    target_modality: Optional[str] = typer.Option(None, "--target-modality",
                                                  help="image, spectrum or photometry."),
    exclude_within: Optional[float] = typer.Option(None, "--exclude-within",
                                                   help="Drop neighbours within this many arcsec of the query."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model for --file (default: the catalogue's)."),
    bands_as: Optional[str] = typer.Option(None, "--bands-as", help="For --file: declare its image planes, in "
                                           "order, to be these bands (e.g. g,r,z)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Nearest neighbours of a galaxy, within or across modalities."""
    from ..data.records import InvalidDataError
    from ..search.catalog_search import CatalogSearch

    try:
        results = CatalogSearch(index_dir).search(
            k=k, object_id=object_id, ra=ra, dec=dec, file=file, query_modality=query_modality,
            target_modality=target_modality, exclude_within_arcsec=exclude_within, model=model,
            bands_as=bands_as.split(",") if bands_as else None)
    except (InvalidDataError, ValueError, FileNotFoundError) as exc:
        fail(exc)
    if as_json:
        print_json([r.__dict__ for r in results])
        return
    from rich.table import Table

    table = Table(title="neighbours")
    for col in ("rank", "object_id", "similarity", "ra", "dec", "separation (arcsec)"):
        table.add_column(col)
    for i, r in enumerate(results, 1):
        table.add_row(str(i), r.object_id, f"{r.similarity:.4f}", f"{r.ra:.5f}", f"{r.dec:.5f}",
                      f"{r.separation_arcsec:.1f}")
    Console().print(table)
