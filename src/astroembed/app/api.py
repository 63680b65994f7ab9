"""The JSON API under /api (its OpenAPI schema at /api/openapi.json).

Every route reads the app's state (an :class:`Explorer`, its map, its picture cache); none takes a
path. Search results come as JSON, or as a CSV / Parquet download with ``format=csv|parquet``. An
uploaded query's embedding is kept (by the SHA-256 of the file) in the cache folder so its search has a
permalink like any other: ``/api/search?upload=<sha256>``.
"""

from __future__ import annotations

import io
import re
from typing import Literal, Optional

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from ..data.records import InvalidDataError
from ..files import atomic_path
from ..search.catalog_search import POSITION_MATCH_ARCSEC
from .explorer import MAX_CONE_ARCSEC, MAX_K, Explorer, NotFoundError, json_value, check_k, hits_as_dicts
from .queries import MAX_QUERY_CHARS, resolve
from .render import spectrum_png, spectrum_series, thumbnail_png
from .uploads import UploadTooLargeError, parse_upload, safe_name

router = APIRouter(prefix="/api", tags=["api"])

Modality = Literal["image", "spectrum", "both"]
Format = Literal["json", "csv", "parquet"]
_UPLOAD_KEY = re.compile(r"^[0-9a-f]{64}$")
_PNG_CACHE = {"Cache-Control": "public, max-age=86400"}


def _state(request: Request):
    return request.app.state


def _explorer(request: Request) -> Explorer:
    return request.app.state.explorer


@router.get("/catalogue", summary="What this server serves: size, modalities, labels, models")
def catalogue(request: Request) -> dict:
    return _explorer(request).summary()


@router.get("/objects", summary="Cone search: catalogue objects near a sky position, nearest first")
def cone_search(request: Request, ra: float = Query(..., ge=0, lt=360, description="degrees"),
                dec: float = Query(..., ge=-90, le=90, description="degrees"),
                radius_arcsec: float = Query(60.0, gt=0, le=MAX_CONE_ARCSEC),
                limit: int = Query(100, ge=1, le=1000)) -> dict:
    objects = _explorer(request).cone(ra, dec, radius_arcsec, limit)
    return {"ra": ra, "dec": dec, "radius_arcsec": radius_arcsec, "objects": objects}


@router.get("/objects/random", summary="The id of a random catalogue object")
def random_object(request: Request) -> dict:
    return {"object_id": _explorer(request).random_id()}


@router.get("/objects/{object_id:path}", summary="One object: position, modalities, labels")
def get_object(request: Request, object_id: str) -> dict:
    return _explorer(request).object_info(object_id)


@router.get("/resolve", summary="Interpret the search box: an object id, a position or a cone")
def resolve_query(request: Request, q: str = Query(..., max_length=MAX_QUERY_CHARS)) -> dict:
    return resolve(_explorer(request), q)


@router.get("/thumbnails/{object_id:path}", summary="Colour composite of an object (PNG, cached on disk)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def thumbnail(request: Request, object_id: str) -> Response:
    state, explorer = _state(request), _explorer(request)
    explorer.row_of(object_id)
    galaxy = explorer.galaxy(object_id)
    if galaxy is None or galaxy.image is None:
        raise NotFoundError("no image of this object in the survey", object_id=object_id, field="image_array")
    data = state.cache.get("thumbnail", object_id, lambda: thumbnail_png(galaxy.image, state.preprocessing))
    return Response(data, media_type="image/png", headers=_PNG_CACHE)


@router.get("/spectra/{object_id:path}", summary="An object's spectrum: JSON series, or a PNG plot with masks shaded",
            responses={200: {"content": {"image/png": {}, "application/json": {}}}})
def spectrum(request: Request, object_id: str, format: Literal["json", "png"] = "json"):
    state, explorer = _state(request), _explorer(request)
    explorer.row_of(object_id)
    galaxy = explorer.galaxy(object_id)
    if galaxy is None or galaxy.spectrum is None:
        raise NotFoundError("no spectrum of this object in the survey", object_id=object_id, field="spectrum_flux")
    if format == "json":
        return {"object_id": object_id, **spectrum_series(galaxy.spectrum)}
    data = state.cache.get("spectrum", object_id, lambda: spectrum_png(galaxy.spectrum))
    return Response(data, media_type="image/png", headers=_PNG_CACHE)


@router.get("/map", summary="2-D map of the catalogue (UMAP of the embeddings), coloured by a label",
             description='label: a survey label, or "anomaly score" (k-NN distance; higher = more unusual)')
def catalogue_map(request: Request, label: Optional[str] = Query(None, max_length=100)) -> dict:
    return _state(request).catalogue_map.as_json(label)


@router.get("/search", summary="Neighbours of a catalogued object, a position or an uploaded query",
            responses={200: {"content": {"application/json": {}, "text/csv": {},
                                         "application/vnd.apache.parquet": {}}}})
def search(request: Request, object_id: Optional[str] = Query(None, max_length=200),
           ra: Optional[float] = Query(None, ge=0, lt=360), dec: Optional[float] = Query(None, ge=-90, le=90),
           upload: Optional[str] = Query(None, max_length=64, description="SHA-256 key of an uploaded query"),
           query_modality: Modality = "image", target_modality: Modality = "image",
           k: int = Query(16, ge=1, le=MAX_K), exclude_within_arcsec: Optional[float] = Query(None, ge=0),
           format: Format = "json"):
    explorer = _explorer(request)
    given = [object_id is not None, ra is not None or dec is not None, upload is not None]
    if sum(given) != 1:
        raise InvalidDataError("give exactly one query: object_id, ra and dec, or upload", field="object_id")
    query: dict = {"query_modality": query_modality, "target_modality": target_modality, "k": k,
                   "exclude_within_arcsec": exclude_within_arcsec}
    if upload is not None:
        vector, q_ra, q_dec = _load_upload(request, upload, query_modality)
        explorer.check_modalities(query_modality, target_modality)
        hits = explorer.neighbours(vector, target_modality, check_k(k), q_ra, q_dec,
                                   exclude_within_arcsec=exclude_within_arcsec)
        query["upload"] = upload
    else:
        if object_id is None:
            if ra is None or dec is None:
                raise InvalidDataError("a position query needs both ra and dec", field="ra" if ra is None else "dec")
            found = explorer.cone(ra, dec, POSITION_MATCH_ARCSEC, limit=1)
            if not found:
                raise NotFoundError(f"no catalogued object within {POSITION_MATCH_ARCSEC:g}\" of (ra {ra}, dec {dec})",
                                    field="ra")
            object_id = found[0]["object_id"]
        hits = explorer.search_object(object_id, query_modality, target_modality, k, exclude_within_arcsec)
        query["object_id"] = object_id
    return _results(query, hits_as_dicts(hits), format)


@router.post("/upload-search", summary="Embed an uploaded cutout or spectrum with the catalogue's model, then search")
def upload_search(request: Request, file: UploadFile = File(..., description="FITS cutout/spectrum, JPEG or PNG"),
                  modality: Literal["auto", "image", "spectrum"] = Form("auto"),
                  target_modality: Modality = Form("image"), k: int = Form(16, ge=1, le=MAX_K),
                  exclude_within_arcsec: Optional[float] = Form(None, ge=0)) -> dict:
    state, explorer = _state(request), _explorer(request)
    limit = state.limits.max_bytes
    data = file.file.read(limit + 1)  # never more than the limit (+1 byte to know it was over)
    if len(data) > limit:
        raise UploadTooLargeError(f"the file is over the limit of {limit} bytes", source=file.filename)
    parsed = parse_upload(data, file.filename, state.limits)
    if modality == "auto":
        modality = "image" if parsed.galaxy.image is not None else "spectrum"
    explorer.check_modalities(modality, target_modality)
    try:
        vector = explorer.embed_galaxy(parsed.galaxy, modality)
    except InvalidDataError as exc:  # name the file the user sent, as the readers do
        named = InvalidDataError(str(exc), source=safe_name(file.filename))
        named.field = exc.field
        raise named from None
    g = parsed.galaxy
    _save_upload(request, parsed.sha256, modality, vector, g.ra, g.dec)
    hits = explorer.neighbours(vector, target_modality, check_k(k), g.ra, g.dec,
                               exclude_within_arcsec=exclude_within_arcsec)
    permalink = (f"/uploads/{parsed.sha256}?qm={modality}&tm={target_modality}&k={k}"
                 + (f"&exclude={exclude_within_arcsec:g}" if exclude_within_arcsec else ""))
    return {"query": {"upload": parsed.sha256, "query_modality": modality, "target_modality": target_modality,
                      "k": k, "exclude_within_arcsec": exclude_within_arcsec, "file_kind": parsed.kind,
                      "ra": None if not np.isfinite(g.ra) else g.ra, "dec": None if not np.isfinite(g.dec) else g.dec},
            "warnings": parsed.warnings, "permalink": permalink, "neighbours": hits_as_dicts(hits)}


def _upload_path(request: Request, key: str, modality: str):
    if not _UPLOAD_KEY.match(key or ""):
        raise InvalidDataError("not an upload key (64 hexadecimal digits)", field="upload")
    if modality not in ("image", "spectrum"):
        raise InvalidDataError("an uploaded query is an image or a spectrum", field="query_modality")
    return _state(request).cache.root / "uploads" / f"{key}-{modality}.npy"


def _save_upload(request: Request, key: str, modality: str, vector, ra: float, dec: float) -> None:
    path = _upload_path(request, key, modality)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole or not at all: a crash mid-write must not leave a truncated query for its permalink.
    with atomic_path(path, fsync=False) as tmp, open(tmp, "wb") as f:  # a handle: np.save would add ".npy"
        np.save(f, np.concatenate([[ra, dec], np.asarray(vector, np.float64)]), allow_pickle=False)


def _load_upload(request: Request, key: str, modality: str):
    path = _upload_path(request, key, modality)
    if not path.is_file():
        raise NotFoundError(f"no uploaded {modality} query with this key on this server; upload the file again",
                            field="upload")
    values = np.load(path, allow_pickle=False)
    return values[2:].astype(np.float32), float(values[0]), float(values[1])


def _results(query: dict, neighbours: list[dict], format: str):
    if format == "json":
        # Already JSON values (hits_as_dicts): a JSONResponse skips FastAPI's jsonable_encoder, which walked
        # every field of every neighbour again, ~0.4 ms of the server's ~1.8 ms per search (cProfile,
        # BENCHMARKS.md).
        return JSONResponse({"query": {k: json_value(v) for k, v in query.items()}, "neighbours": neighbours})
    import pyarrow as pa

    columns = ("rank", "object_id", "similarity", "ra", "dec", "separation_arcsec")
    table = pa.table({c: [n[c] for n in neighbours] for c in columns},
                     schema=pa.schema([("rank", pa.int32()), ("object_id", pa.string()),
                                       ("similarity", pa.float32()), ("ra", pa.float64()), ("dec", pa.float64()),
                                       ("separation_arcsec", pa.float64())]))
    table = table.replace_schema_metadata({k: str(v) for k, v in query.items()})
    buffer = io.BytesIO()
    if format == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, buffer)
        media, suffix = "text/csv", "csv"
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, buffer)
        media, suffix = "application/vnd.apache.parquet", "parquet"
    name = f"neighbours.{suffix}"
    return Response(buffer.getvalue(), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

