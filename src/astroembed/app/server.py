"""The FastAPI application: state, error handling, request limits, security headers, and `serve`.

Safe by default:

- binds to 127.0.0.1 (another host only when asked for);
- request bodies over the upload limit are refused before they are read (413), bodies without a
  length too (411);
- every error is a JSON ``{"error": ...}`` with a 4xx status; an unexpected failure is a 500 with a
  one-line message, never a traceback;
- CORS is off unless origins are given; pages send a Content-Security-Policy that allows only this
  server's own scripts, styles and images;
- read-only: the survey is opened read-only and the index is only read; the app writes only in its
  cache folder (thumbnails, spectrum plots, the catalogue map, uploaded queries' embeddings).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.records import InvalidDataError
from .catalogue_map import CatalogueMap
from .explorer import Explorer, NotFoundError
from .render import ThumbnailCache, default_cache_dir
from .uploads import UploadLimits, UploadTooLargeError

__all__ = ["create_app", "serve", "DEFAULT_HOST", "DEFAULT_PORT"]

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
APP_DIR = Path(__file__).parent
# multipart framing around the file: boundaries, part headers and the small form fields
_MULTIPART_OVERHEAD = 64 * 1024
_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
log = logging.getLogger("astroembed.app")


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` (413) or without a length (411)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is None or not length.isdigit():
            return await _send_json(send, 411, "a request body needs a Content-Length header")
        if int(length) > self.max_bytes:
            return await _send_json(send, 413, f"request body of {int(length)} bytes is over the limit "
                                               f"of {self.max_bytes} bytes")
        return await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware adding the Content-Security-Policy and related headers to every response.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware costs a task and
    a stream per request, a measurable share of a sub-millisecond search under load."""

    HEADERS = [(b"content-security-policy", _CSP.encode()), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"no-referrer")]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in self.HEADERS if h[0] not in present]
            await send(message)

        return await self.app(scope, receive, send_with_headers)


async def _send_json(send, status: int, message: str) -> None:
    response = JSONResponse({"error": message}, status_code=status)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def _error(status: int, exc: Exception) -> JSONResponse:
    body = {"error": str(exc)}
    if isinstance(exc, InvalidDataError) and exc.field:
        body["field"] = exc.field
    return JSONResponse(body, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError):
        return _error(404, exc)

    @app.exception_handler(UploadTooLargeError)
    async def too_large(request: Request, exc: UploadTooLargeError):
        return _error(413, exc)

    @app.exception_handler(ValueError)  # InvalidDataError is a ValueError
    async def bad_value(request: Request, exc: ValueError):
        return _error(422, exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ())[1:]) or "request", "message": e.get("msg")}
                    for e in exc.errors()]
        text = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse({"error": f"invalid request ({text})", "problems": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)  # the server's log has the details
        return JSONResponse({"error": "internal error; the server log has the details"}, status_code=500)


def create_app(index_dir, data=None, cache_dir=None, cors_origins: Sequence[str] = (),
               limits: UploadLimits = UploadLimits()) -> FastAPI:
    """The web app over an index folder (see the module docstring for what it allows).

    Parameters
    ----------
    index_dir : folder written by ``astroembed index``.
    data : the survey for pictures and labels (default: the tiles the catalogue was embedded from).
    cache_dir : where thumbnails, plots, the catalogue map and uploaded queries are kept
        (default ``<index>.app-cache`` beside the index folder; never inside it).
    cors_origins : origins allowed to call the API from other sites; empty (the default) = CORS off.
    limits : upload size and pixel limits.
    """
    from . import api, pages

    explorer = Explorer(index_dir, data)
    app = FastAPI(title="astroembed", summary="Explore an embedding catalogue and search it by example",
                  # Swagger UI and ReDoc pages load their scripts from a CDN: nothing here may depend on
                  # another site (and the CSP forbids it), so the schema is served as JSON only.
                  openapi_url="/api/openapi.json", docs_url=None, redoc_url=None)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(index_dir)
    app.state.explorer = explorer
    app.state.catalogue_map = CatalogueMap(explorer, cache_dir)
    app.state.cache = ThumbnailCache(cache_dir)
    app.state.preprocessing = explorer.image_preprocessing()
    app.state.limits = limits
    _install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=APP_DIR / "static"), name="static")

    @app.get("/healthz", tags=["health"], summary="Liveness: the index is loaded")
    def healthz() -> dict:
        return {"status": "ok", "objects": len(explorer), "modalities": explorer.modalities}

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"])
    app.add_middleware(BodyLimit, max_bytes=limits.max_bytes + _MULTIPART_OVERHEAD)
    app.add_middleware(SecurityHeaders)
    return app


def serve(index_dir, data=None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, cache_dir=None,
          cors_origins: Sequence[str] = (), max_upload_mb: float = 20.0, search_threads: int = 1,
          access_log: bool = False) -> None:
    """Run the app with uvicorn until interrupted.

    ``search_threads``: OpenMP threads of each faiss search. Requests already run concurrently (one
    thread each), and several multi-threaded searches at once make OpenMP's threads spin against each
    other, so the default is one.
    """
    import faiss
    import uvicorn

    faiss.omp_set_num_threads(max(1, int(search_threads)))
    limits = UploadLimits(max_bytes=int(max_upload_mb * 1024 * 1024))
    app = create_app(index_dir, data, cache_dir, cors_origins, limits)
    # The map's UMAP takes tens of seconds the first time: do it (or load it) before the first visitor.
    catalogue_map = app.state.catalogue_map
    if not catalogue_map.cache_path().is_file():
        print(f"computing the catalogue map (UMAP, once; kept in {catalogue_map.cache_path().parent})",
              file=sys.stderr, flush=True)
    catalogue_map.points()
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False, access_log=access_log)
