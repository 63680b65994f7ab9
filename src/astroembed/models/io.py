"""Saving and loading models: a directory holding ``config.json`` + ``model.safetensors``, nothing pickled.

A saved model loads on a machine that has neither the training code's paths nor a GPU: ``config.json`` is
data describing the architecture (plus anything else worth keeping beside it, e.g. the preprocessing), and
the weights are read with safetensors, which cannot execute code (``torch.load`` is never used).

``config.json`` layout::

    {
      "model_type": "image_encoder",        # key into MODEL_BUILDERS
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
import importlib
import json
import os
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from astroembed.data.records import InvalidDataError
from astroembed.models.image_encoder import build_image_encoder

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "MODEL_BUILDERS",
    "ModelFileError",
    "register_model_type",
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


# model_type -> builder(config["model"]). A dict lookup, never eval or an import named by the file: a config can only
# select among builders this code base registered. Other packages add theirs with register_model_type.
MODEL_BUILDERS: dict[str, Callable[[Mapping[str, Any]], nn.Module]] = {"image_encoder": build_image_encoder}
# Built-in model types whose module registers itself when imported; imported on first use so that loading,
# say, a spectrum model does not depend on the caller having imported its module. A fixed table, not a
# module name read from the config file.
_REGISTERED_ON_IMPORT = {"spectrum_transformer": "astroembed.models.spectrum_transformer",
                         "aligned": "astroembed.models.clip_model"}


def register_model_type(name: str, builder: Callable[[Mapping[str, Any]], nn.Module], *,
                        overwrite: bool = False) -> None:
    """Make ``build_from_config`` (and ``load_model``) able to build ``model_type == name``.

    Args:
        name: the ``model_type`` string written to ``config.json``.
        builder: called with ``config["model"]`` (a dict), returns the randomly initialised module.
        overwrite: replace an existing registration instead of raising.
    """
    if not overwrite and name in MODEL_BUILDERS and MODEL_BUILDERS[name] is not builder:
        raise ValueError(f"model_type {name!r} is already registered; pass overwrite=True to replace it")
    MODEL_BUILDERS[name] = builder


def _astroembed_version() -> str:
    try:
        return importlib_metadata.version("astroembed")
    except importlib_metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Build the (randomly initialised) module a saved config describes.

    Args:
        config: ``{"model_type": ..., "model": {...}}`` as written by :func:`save_model`. A bare image
            encoder config (a dict with an ``"arch"`` key, ``ImageEncoderConfig.to_dict()``) is accepted too.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    if "model_type" not in config:
        if "arch" in config:
            return build_image_encoder(config)
        raise ValueError(f"config has no 'model_type' key (keys: {sorted(config)})")
    model_type = config["model_type"]
    if model_type not in MODEL_BUILDERS and model_type in _REGISTERED_ON_IMPORT:
        importlib.import_module(_REGISTERED_ON_IMPORT[model_type])  # the module registers its builder
    if model_type not in MODEL_BUILDERS:
        raise ValueError(f"unknown model_type {model_type!r}; registered: {sorted(MODEL_BUILDERS)}")
    if not isinstance(config.get("model"), Mapping):
        raise ValueError(f"config for model_type {model_type!r} needs a 'model' object describing the architecture")
    return MODEL_BUILDERS[model_type](config["model"])


DEFAULT_FILE_MODE = 0o644  # owner writes, everyone reads: models are shared between users of a cluster


def _atomic_write(path: Path, write: Callable[[str], None], mode: int = DEFAULT_FILE_MODE) -> None:
    """Write via a temporary file + rename, so an interrupted save never leaves a half-written file in place.

    ``mkstemp`` creates the temporary file private (0600) so no one reads it half-written; ``mode`` is
    applied before the rename, so the finished file is never visible with the wrong permissions.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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

    Args:
        module: the model; its ``state_dict`` (parameters and persistent buffers) is saved, tied tensors
            once under each name.
        config: JSON-serialisable mapping with a ``"model_type"`` string key and, for models that
            :func:`build_from_config` should rebuild, a ``"model"`` entry for the builder. Any other
            JSON entries (preprocessing, training summary) are kept. ``"astroembed_version"`` is set.
        directory: output directory.
        file_mode: permission bits of the two files; the default 0o644 lets other users read a shared
            model (pass 0o600 to keep it private).

    Returns:
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
    _atomic_write(directory / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}),
                  file_mode)
    _atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"),
                  file_mode)
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

    Args:
        directory: the saved model directory.
        device: where to put the tensors.

    Returns:
        ``(config, state_dict)`` with every ``state_dict`` name the saved module had (tied ones included).

    Raises:
        FileNotFoundError: ``config.json`` or ``model.safetensors`` is missing (the message names it).
        ModelFileError: either file is corrupt or truncated (the message names it).
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

    Returns:
        ``(module, config)``; ``config`` holds the extras saved with the model (e.g. preprocessing).
    """
    config, state = load_state(directory, device="cpu")
    module = build_from_config(config)
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
