"""The `astroembed` command: thin shells over the Python API, one module per group of subcommands.

Heavy imports are lazy (inside each command), so that `astroembed --help` is instant. Every command runs
inside :class:`~astroembed.cli.errors.ReportingGroup`: expected failures print one line, bugs a traceback.

- ``base``: the application object, global options (``--debug``) and helpers every command shares;
- ``data_commands``: simulate, info, convert, augment;
- ``pretrain_commands``: pretrain image / spectrum / clip;
- ``catalogue_commands``: embed, index, export, search;
- ``science_commands``: evaluate, anomalies, demo, serve;
- ``spectrum_commands``: train-spectrum-decoder, predict-spectrum.
"""

from . import catalogue_commands, data_commands, pretrain_commands, science_commands  # noqa: F401 (register)
from . import spectrum_commands  # noqa: F401 (register)
from .base import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - entry point
    app()
