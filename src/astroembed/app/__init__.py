"""`astroembed serve`: a web app to explore an embedding catalogue and search it by example.

Needs the optional extra ``astroembed[app]`` (FastAPI, uvicorn, Jinja2, python-multipart, umap-learn). Modules:

- ``explorer``: the catalogue, its survey and every query, with no web framework in sight;
- ``queries``: the search box (ids, decimal and sexagesimal positions, cones);
- ``uploads``: checks and reads uploaded query files;
- ``render``: thumbnails and spectrum plots, cached on disk beside the index;
- ``catalogue_map``: the home page's UMAP map (with anomaly scores), computed once and cached;
- ``api`` (JSON under /api), ``pages`` (HTML), ``server`` (the app, its limits and ``serve``).
"""


def missing_requirements() -> list[str]:
    """The app's packages that are not installed (empty when the app can run): see astroembed.optional."""
    import importlib.util

    from astroembed.optional import EXTRAS

    return [name for name in EXTRAS["app"] if importlib.util.find_spec(name) is None]
