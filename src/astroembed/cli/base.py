"""The `astroembed` application object, its global options, and what every command shares."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from .errors import ReportingGroup

# ReportingGroup turns every command's expected failures into one line on stderr (cli/errors.py).
app = typer.Typer(add_completion=False, no_args_is_help=True, cls=ReportingGroup,
                  help="Foundation-model embeddings of galaxies: data, pretraining, embedding, search.")


console = Console(stderr=True)


@app.callback()
def _process_settings(
    debug: bool = typer.Option(False, "--debug", envvar="ASTROEMBED_DEBUG",
                               help="Show the full traceback of any failure (for bug reports)."),
) -> None:
    """Foundation-model embeddings of galaxies: data, pretraining, embedding, search."""
    from astroembed.runtime import keep_freed_memory

    keep_freed_memory()  # every command: faster CPU tensor work (astroembed/runtime.py)


def fail(exc: Exception) -> None:
    """Bad input ends the command: ReportingGroup prints it as one line (a traceback with --debug)."""
    raise exc


def require(*extras: str, feature: str) -> None:
    """End the command with one line naming the extra to install when a feature's packages are missing."""
    from ..optional import MissingDependencyError, require_extra

    try:
        for extra in extras:
            require_extra(extra, feature)
    except MissingDependencyError as exc:
        fail(exc)


def print_json(obj) -> None:
    """Print strict JSON: a missing value (NaN, e.g. the separation of an object without a position) is null."""
    import math

    def strict(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: strict(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [strict(v) for v in value]
        return value

    print(json.dumps(strict(obj), indent=2, allow_nan=False, default=str))
