"""The one error for bad input data: its message names the file, the object and the field.

It is a ``ValueError``, so callers that catch bad values catch it too; the CLI prints it as one line.
Importable from :mod:`astroembed.data.records` as well, where most code meets it.
"""

from __future__ import annotations

__all__ = ["InvalidDataError"]


class InvalidDataError(ValueError):
    """Bad input data; the message names the file, the object and the field."""

    def __init__(self, message: str, *, source: str | None = None, object_id: str | None = None,
                 field: str | None = None):
        self.source, self.object_id, self.field = source, object_id, field
        where = []
        if source is not None:
            where.append(f"file {source!s}")
        if object_id is not None:
            where.append(f"object {object_id!s}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
