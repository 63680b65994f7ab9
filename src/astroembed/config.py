"""One convention for every config in astroembed: plain dataclasses that round-trip through JSON and YAML.

A config is a ``@dataclass`` that inherits :class:`Config`. It then has

- ``to_dict()``: JSON/YAML-serialisable data (tuples become lists, paths strings, nested configs dicts);
- ``from_dict(data)``: the inverse; missing keys take their defaults, **unknown keys are an error** (a typo in
  a YAML file must not pass silently), nested configs are built from the field's annotation;
- ``from_yaml(name_or_path, overrides)``: a shipped config by name (``"image_simclr_cpu"``, from
  ``astroembed/configs/``) or a YAML file by path, with dotted overrides on top (``{"run.batch_size": 64}``).

Configs are data: YAML is read with ``safe_load`` and nothing in a config is evaluated or imported.

Example
-------
>>> from astroembed.train.image import ImagePretrainConfig
>>> cfg = ImagePretrainConfig.from_yaml("image_simclr_cpu", {"data": "survey", "run.max_minutes": 5})
>>> ImagePretrainConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, TypeVar

__all__ = ["Config", "config_from_dict", "config_to_dict", "load_yaml_config", "save_yaml_config",
           "shipped_configs", "resolve_config_path"]

T = TypeVar("T")


class Config:
    """Mixin for config dataclasses: strict ``from_dict``, ``to_dict`` and YAML loading (see module doc)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts, lists, str, numbers, None) describing every field."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any] | None) -> T:
        """Inverse of :meth:`to_dict`; missing keys take defaults, unknown keys raise ``ValueError``."""
        return config_from_dict(cls, data)

    @classmethod
    def from_yaml(cls: type[T], name_or_path: str | os.PathLike | None = None,
                  overrides: Mapping[str, Any] | None = None) -> T:
        """A shipped config by name or a YAML file by path, with dotted ``overrides`` applied on top."""
        return load_yaml_config(cls, name_or_path, overrides)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain data of a config dataclass (recursive)."""
    return {f.name: _to_plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _nested_config_type(annotation: Any) -> type | None:
    """The config dataclass a field holds, from its annotation (``X``, ``X | None``, ``Optional[X]``)."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        classes = [a for a in typing.get_args(annotation) if dataclasses.is_dataclass(a)]
        return classes[0] if len(classes) == 1 else None
    return None


def config_from_dict(cls: type[T], data: Mapping[str, Any] | None) -> T:
    """Build a config dataclass ``cls`` from plain data: unknown keys are an error, never evaluated.

    Nested configs are built from the fields' type annotations; a mapping given for such a field goes
    through the nested class's own ``from_dict`` (so subclasses may add checks).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__}: expected a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} key(s) {sorted(unknown)}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        nested = _nested_config_type(hints.get(name))
        if nested is not None and isinstance(value, Mapping):
            value = nested.from_dict(value) if hasattr(nested, "from_dict") else config_from_dict(nested, value)
        kwargs[name] = value
    return cls(**kwargs)


def shipped_configs() -> dict[str, Path]:
    """Name -> path of the configs shipped inside the package (``astroembed/configs/*.yaml``)."""
    folder = resources.files("astroembed") / "configs"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def resolve_config_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped config's name (``"clip_cpu"``) or a path to a YAML file -> the file's path."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    raise FileNotFoundError(f"no config file {str(name_or_path)!r} and no shipped config of that name "
                            f"(shipped: {', '.join(sorted(shipped))})")


def load_yaml_config(cls: type[T], name_or_path: str | os.PathLike | None,
                     overrides: Mapping[str, Any] | None = None) -> T:
    """A config from a shipped name or YAML path (``None``: defaults) with dotted ``overrides`` on top.

    Parameters
    ----------
    cls
        The config dataclass.
    name_or_path
        ``None`` for the dataclass defaults, a shipped config name, or a YAML file path.
    overrides
        ``{"run.batch_size": 64, "data": "survey"}``; ``None`` values are skipped (unset CLI options).
    """
    import yaml

    data: dict = {}
    if name_or_path is not None:
        path = resolve_config_path(name_or_path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level of the YAML config")
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        target = data
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return config_from_dict(cls, data)


def save_yaml_config(config: Any, path: str | os.PathLike) -> None:
    """Write a config as YAML (the run folder's ``config.yaml``: what was run, reloadable)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
