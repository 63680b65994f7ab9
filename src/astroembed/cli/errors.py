"""How the `astroembed` command reports failures: one line for the user's mistakes, tracebacks for bugs.

Every subcommand runs inside :class:`ReportingGroup.invoke`, so a command added to the app (or to a
sub-app such as ``pretrain``) gets this handling without code of its own. An *expected* failure is one
the user can fix from the message alone:

* :class:`~astroembed.data.records.InvalidDataError` (and every other ``ValueError``): bad input data,
  a bad option value, a model folder whose ``config.json`` lacks a key;
* ``OSError``: a missing file, an output path that is a file, a folder that cannot be written, a full
  disk (the message carries the path);
* :class:`DeviceUnavailableError`: ``--device cuda`` on a machine without a usable GPU;
* :class:`~astroembed.optional.MissingDependencyError`: a feature whose optional extra is not installed;
* torch's ``OutOfMemoryError``: the batch does not fit on the device.

Each is printed as ``error: <message>`` on stderr, on one line, and the command exits with code 2.
Anything else (``KeyError``, ``TypeError``, ``RuntimeError`` ...) is a bug in astroembed and keeps its
traceback. ``astroembed --debug <command>`` (or ``ASTROEMBED_DEBUG=1``) re-raises expected failures too,
with their traceback, for a bug report.
"""

from __future__ import annotations

import errno

import typer
from typer.core import TyperGroup

from ..optional import MissingDependencyError
from ..runtime import DeviceUnavailableError

__all__ = ["DeviceUnavailableError", "EXIT_CODE", "ReportingGroup", "debug_requested", "expected_failure", "one_line",
           "report"]

EXIT_CODE = 2  # as for click's usage errors: the command was given something it cannot use


def expected_failure(exc: BaseException) -> bool:
    """True when ``exc`` is a failure the user can fix from its message (see the module docstring)."""
    if isinstance(exc, (ValueError, OSError, DeviceUnavailableError, MissingDependencyError)):
        return True
    # torch.OutOfMemoryError, by name: this module must not import torch (`astroembed --help` stays instant).
    return type(exc).__name__ == "OutOfMemoryError"


# What an OS error on a path usually means for a command's input or output.
_OS_HINTS = {
    errno.EEXIST: "already exists; an output folder was to be made here (is a file in the way?)",
    errno.ENOTDIR: "part of this path is a file, not a folder",
    errno.EISDIR: "this is a folder; a file was expected",
    errno.ENOENT: "no such file or folder",
    errno.EACCES: "permission denied; choose a path you may write (or read)",
    errno.EPERM: "operation not permitted here",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "the disk is full",
}


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (library messages often span several); an OS error on a path
    reads ``<path>: <what it means>``."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {_OS_HINTS.get(exc.errno, exc.strerror or type(exc).__name__)}"
    text = " ".join(str(exc).split())
    if type(exc).__name__ == "OutOfMemoryError":
        text = f"out of device memory ({text[:200]}); try a smaller --batch-size or --device cpu"
    return text or type(exc).__name__


def report(exc: BaseException) -> None:
    """Print ``exc`` as one ``error:`` line on stderr and end the command with :data:`EXIT_CODE`.

    Plain text rather than rich markup: messages hold ``[...]`` (column lists, shapes) that rich would
    take for markup, and a console would wrap them at its width.
    """
    typer.echo(f"error: {one_line(exc)}", err=True)
    raise typer.Exit(code=EXIT_CODE)


def debug_requested(ctx: typer.Context) -> bool:
    """True when the command line asked for tracebacks (the app's global ``--debug`` option)."""
    return bool(ctx.find_root().params.get("debug"))


class ReportingGroup(TyperGroup):
    """The app's command group: runs a subcommand and reports its expected failures (module docstring)."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # click's own ends and usage errors
            raise
        except Exception as exc:  # noqa: BLE001 - sorted into expected failures and bugs just below
            if not expected_failure(exc) or debug_requested(ctx):
                raise
            report(exc)
