"""One registry style for every extension point: image architectures, model types, embedders, SSL methods.

A :class:`Registry` maps a name (what a config or ``config.json`` says) to an object (a builder, a
class). Lookup is a dict lookup: a config can only select among objects that code registered; nothing
named in a file is evaluated or imported. Built-in entries are listed in a fixed table of modules that
register themselves when imported, so looking one up does not depend on what the caller imported first
(and the registry's module does not import them at import time, which would make circles).

Adding an image architecture, for example, is one new file that ends with ::

    IMAGE_ARCHITECTURES.register("my_net", build_my_net, options=("widths",))

plus, for a built-in, one line in the registry's table of built-in modules (for a plugin, importing the
file is enough).
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, Iterator, Mapping, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object, with optional metadata per entry and lazily imported built-ins.

    Parameters
    ----------
    kind
        What the entries are, for messages ("image encoder architecture").
    builtins
        ``{name: module}``: built-in entries whose module registers them when imported.
    """

    def __init__(self, kind: str, builtins: Mapping[str, str] | None = None):
        self.kind = kind
        self._builtins = dict(builtins or {})
        self._entries: dict[str, T] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False, **info: Any):
        """Register ``obj`` under ``name`` (or use as a decorator: ``@REGISTRY.register("name")``).

        ``info`` is kept beside the entry (e.g. the config options an architecture understands).
        Registering a different object under a taken name is an error unless ``overwrite``.
        """
        if obj is None:
            return lambda target: self.register(name, target, overwrite=overwrite, **info)
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if not overwrite and name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
        self._entries[name] = obj
        self._info[name] = dict(info)
        return obj

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and plugins that replace a built-in)."""
        self._entries.pop(name, None)
        self._info.pop(name, None)

    def _load(self, name: str) -> None:
        if name not in self._entries and name in self._builtins:
            importlib.import_module(self._builtins[name])  # a fixed table, never a name from a file

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._builtins)

    def __getitem__(self, name: str) -> T:
        self._load(name)
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {self.names()}")
        return self._entries[name]

    def info(self, name: str) -> dict[str, Any]:
        """The metadata registered with ``name``."""
        self[name]
        return self._info[name]

    def names(self) -> list[str]:
        """Every registered or built-in name, sorted."""
        return sorted(set(self._entries) | set(self._builtins))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
