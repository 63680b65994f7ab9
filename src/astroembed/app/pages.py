"""HTML pages (Jinja2 templates); everything they show comes from the JSON API through static/app.js.

Pages carry what the script needs in ``data-`` attributes (the Content-Security-Policy forbids inline
scripts), and every search is a URL: ``/objects/<id>?qm=image&tm=spectrum&k=16&exclude=5`` or
``/uploads/<sha256>?qm=image&tm=image&k=16`` for an uploaded query.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from .catalogue_map import ANOMALY_LABEL
from .explorer import NotFoundError

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")  # autoescapes .html
_UPLOAD_KEY = re.compile(r"^[0-9a-f]{64}$")


def _page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
    explorer = request.app.state.explorer
    context = {"summary": explorer.summary(), **context}
    return templates.TemplateResponse(request, name, context, status_code=status)


@router.get("/", response_class=HTMLResponse)
def home(request: Request):
    return _page(request, "home.html", anomaly_label=ANOMALY_LABEL)


@router.get("/upload", response_class=HTMLResponse)
def upload(request: Request):
    return _page(request, "upload.html")


@router.get("/objects/{object_id:path}", response_class=HTMLResponse)
def object_page(request: Request, object_id: str):
    try:
        info = request.app.state.explorer.object_info(object_id)
    except NotFoundError as exc:
        return _page(request, "missing.html", status=404, message=str(exc))
    return _page(request, "object.html", info=info)


@router.get("/uploads/{key}", response_class=HTMLResponse)
def upload_results(request: Request, key: str):
    if not _UPLOAD_KEY.match(key):
        return _page(request, "missing.html", status=404, message="not an upload key (64 hexadecimal digits)")
    return _page(request, "upload_results.html", key=key)
