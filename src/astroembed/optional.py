"""Optional dependencies: which extra of ``pip install astroembed[...]`` brings what a feature needs.

The core install (``pip install astroembed``) loads models, embeds, builds catalogues and indexes,
searches, converts and summarises surveys. Everything else is an extra:

==========  ===========================================  ==============================================
extra       packages                                     features
==========  ===========================================  ==============================================
train       lightning, matplotlib                        ``astroembed pretrain ...``, ``augment --show``
survey      galsim, speclite, kcorrect                   the built-in survey (``astroembed simulate``)
dask        dask[distributed]                            ``astroembed embed --dask-workers N``
evaluate    scikit-learn, matplotlib, zuko, umap-learn   probes, posteriors, maps and reports (``evaluate``)
app         fastapi, uvicorn, jinja2, umap-learn, ...    the web app (``astroembed serve``)
all         every extra above                            ``astroembed demo`` (what ``make demo`` installs)
==========  ===========================================  ==============================================

:func:`require` turns a missing package into one clear message instead of an ``ImportError`` from deep
inside a module.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["EXTRAS", "MissingDependencyError", "require", "require_extra"]

# extra -> the importable modules it provides
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("lightning", "matplotlib"),
    "survey": ("galsim", "speclite", "kcorrect"),
    "dask": ("dask", "distributed"),
    "evaluate": ("sklearn", "matplotlib", "zuko", "umap"),
    "app": ("fastapi", "uvicorn", "jinja2", "multipart", "matplotlib", "sklearn", "umap"),
}


class MissingDependencyError(ImportError):
    """A feature's optional dependency is not installed; the message names the extra that brings it."""


def _message(module: str, extra: str, feature: str) -> str:
    return (f"{feature} needs the optional package {module!r}, which is not installed: "
            f"pip install 'astroembed[{extra}]'")


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra`` and ``feature``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(_message(module, extra, feature)) from None


def require_extra(extra: str, feature: str) -> None:
    """Check that every module of ``extra`` can be imported (without importing it) before a long job starts."""
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingDependencyError(_message(module, extra, feature))
