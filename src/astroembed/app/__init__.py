"""`astroembed serve`: a web app to explore an embedding catalogue and search it by example.

Needs the optional extra ``astroembed[app]`` (FastAPI, uvicorn, Jinja2, python-multipart, umap-learn). Modules:

- ``explorer``: the catalogue, its survey and every query, with no web framework in sight;
- ``queries``: the search box (ids, decimal and sexagesimal positions, cones);
- ``uploads``: checks and reads uploaded query files;
- ``render``: thumbnails and spectrum plots, cached on disk beside the index;
- ``catalogue_map``: the home page's UMAP map (with anomaly scores), computed once and cached;
- ``api`` (JSON under /api), ``pages`` (HTML), ``server`` (the app, its limits and ``serve``).
"""
