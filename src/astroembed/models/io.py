"""Saving and loading models: a directory holding ``config.json`` + ``model.safetensors``, nothing pickled.

A saved model loads on a machine that has neither the training code's paths nor a GPU: ``config.json`` is
data describing the architecture (plus anything else worth keeping beside it, e.g. the preprocessing), and
the weights are read with safetensors, which cannot execute code (``torch.load`` is never used).

``config.json`` layout::

    {
      "model_type": "image_encoder",        # key into MODEL_TYPES (models/registry.py)
      "model": {"arch": "resnet18", ...},   # what the builder receives (ImageEncoderConfig.to_dict())
      "preprocessing": {...},               # optional extras, any JSON
      "astroembed_version": "0.1.0"         # written by save_model
    }

Example::

    save_model(encoder, {"model_type": "image_encoder", "model": cfg.to_dict()}, "runs/enc")
    encoder, config = load_model("runs/enc")
    run_id = content_hash("runs/enc")   # sha256 of the weights, recorded with every embedding
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from astroembed.data.records import InvalidDataError
from astroembed.files import atomic_path, atomic_write_text
from astroembed.models.registry import MODEL_TYPES

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "MODEL_TYPES",
    "ModelFileError",
    "build_from_config",
    "save_model",
    "load_state",
    "load_model",
    "content_hash",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class ModelFileError(InvalidDataError):
    """A saved model directory whose ``config.json`` or ``model.safetensors`` cannot be used."""


def _astroembed_version() -> str:
    try:
        return importlib_metadata.version("astroembed")
    except importlib_metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Build the (randomly initialised) module a saved config describes.

    Parameters
    ----------
    config
        ``{"model_type": ..., "model": {...}}`` as written by :func:`save_model`. A bare image
        encoder config (a dict with an ``"arch"`` key, ``ImageEncoderConfig.to_dict()``) is accepted too.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    if "model_type" not in config:
        if "arch" in config:
            return MODEL_TYPES["image_encoder"](config)
        raise ValueError(f"config has no 'model_type' key (keys: {sorted(config)})")
    # A registry lookup, never eval or an import named by the file: a config can only select among the
    # builders this code base (or a plugin the user imported) registered.
    builder = MODEL_TYPES[config["model_type"]]
    if not isinstance(config.get("model"), Mapping):
        raise ValueError(f"config for model_type {config['model_type']!r} needs a 'model' object describing "
                         "the architecture")
    return builder(config["model"])


DEFAULT_FILE_MODE = 0o644  # owner writes, everyone reads: models are shared between users of a cluster


def _independent_copies(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies that share no memory, as safetensors requires.

    Tied tensors (one Parameter under two names) are stored once per name: the tie lives in the module's
    structure, and ``load_state_dict`` writes the same values through both names. Storing each tie once with
    an alias table in the file's metadata would save bytes, but safetensors writes a metadata map with more
    than one key in a different order on each save, which would make :func:`content_hash` differ for
    identical weights.
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state_dict entry {name!r} is a {type(t).__name__}, not a tensor")
        # A copy, not just .contiguous() (which can return the same memory): tied, partly overlapping
        # and non-contiguous tensors all become independent contiguous tensors.
        tensors[name] = t.detach().to("cpu", copy=True).contiguous()
    return tensors


def save_model(module: nn.Module, config: Mapping[str, Any], directory: str | os.PathLike,
               file_mode: int = DEFAULT_FILE_MODE) -> Path:
    """Save ``module.state_dict()`` and ``config`` to ``directory`` (created if needed; existing files replaced).

    Parameters
    ----------
    module
        the model; its ``state_dict`` (parameters and persistent buffers) is saved, tied tensors
        once under each name.
    config
        JSON-serialisable mapping with a ``"model_type"`` string key and, for models that
        :func:`build_from_config` should rebuild, a ``"model"`` entry for the builder. Any other
        JSON entries (preprocessing, training summary) are kept. ``"astroembed_version"`` is set.
    directory
        output directory.
    file_mode
        permission bits of the two files; the default 0o644 lets other users read a shared
        model (pass 0o600 to keep it private).

    Returns
    -------
    The directory as a ``Path``; it holds ``config.json`` and ``model.safetensors``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    if not isinstance(config.get("model_type"), str):
        raise ValueError("config needs a 'model_type' string (e.g. 'image_encoder') so the model can be rebuilt")
    config = {**config, "astroembed_version": _astroembed_version()}
    try:
        text = json.dumps(config, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config is not JSON-serialisable: {exc}") from None

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = _independent_copies(module.state_dict())
    # One metadata key only: see _independent_copies for why (reproducible content_hash).
    with atomic_path(directory / WEIGHTS_NAME, mode=file_mode) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    atomic_write_text(directory / CONFIG_NAME, text + "\n", mode=file_mode)
    return directory


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no model config at {path} (a saved model directory holds {CONFIG_NAME} "
                                f"and {WEIGHTS_NAME})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"not valid JSON ({exc})", source=str(path)) from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ModelFileError("expected a JSON object with a 'model_type' string", source=str(path))
    return config


def load_state(directory: str | os.PathLike, device: str | torch.device = "cpu"
               ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a directory written by :func:`save_model`, without building the model.

    Parameters
    ----------
    directory
        the saved model directory.
    device
        where to put the tensors.

    Returns
    -------
    ``(config, state_dict)`` with every ``state_dict`` name the saved module had (tied ones included).

    Raises
    ------
    FileNotFoundError
        ``config.json`` or ``model.safetensors`` is missing (the message names it).
    ModelFileError
        either file is corrupt or truncated (the message names it).
    """
    directory = Path(directory)
    config = _read_config(directory / CONFIG_NAME)
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no model weights at {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            state = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"cannot read the weights ({exc}); the file is truncated, corrupt or not "
                             f"a safetensors file", source=str(path)) from None
    return config, state


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a saved model from its config and load its weights (strictly); returned in eval mode.

    Returns
    -------
    ``(module, config)``; ``config`` holds the extras saved with the model (e.g. preprocessing).
    """
    config, state = load_state(directory, device="cpu")
    try:
        module = build_from_config(config)
    except KeyError as exc:  # a builder read a key the file lacks: name it and the file, not a traceback
        raise ModelFileError(f"lacks the key {exc.args[0]!r} its architecture needs", field=str(exc.args[0]),
                             source=str(Path(directory) / CONFIG_NAME)) from None
    except ValueError as exc:
        raise ModelFileError(str(exc), source=str(Path(directory) / CONFIG_NAME)) from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"weights do not match the architecture in {CONFIG_NAME}: {exc}",
                             source=str(Path(directory) / WEIGHTS_NAME)) from None
    return module.to(device).eval(), config


def content_hash(directory: str | os.PathLike) -> str:
    """Hex SHA-256 of ``model.safetensors``: identifies the exact weights that produced an embedding."""
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no model weights at {path}")
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
