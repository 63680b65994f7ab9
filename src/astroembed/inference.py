"""`astroembed.load(path)`: an exported model that embeds data exactly as it is stored.

Imports no training code and needs no GPU. A model folder (``RUN/model``) holds ``config.json`` +
``model.safetensors``; the config carries the preprocessing the model was trained with, so

    model = astroembed.load("runs/image/model")
    vectors = model.embed(cutouts)          # (N, bands, H, W) raw flux, or (N, H, W, 3) uint8 RGB

returns an (N, D) float32 numpy array whatever the input's type or device. Spectrum models take
spectra as stored, on any wavelength grid (the saved preprocessing resamples them):

    model = astroembed.load("runs/spectrum/model")
    vectors = model.embed_spectrum(flux, ivar, wavelength, mask)   # or a list of Spectrum records

and an aligned (CLIP) model embeds both into one space: ``.embed(images)``, ``.embed_spectrum(...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .preprocess.image import PreprocessConfig, preprocess, standardize
from .preprocess.spectrum import SpectrumPreprocessConfig, prepare_batch, prepare_spectra
from .data.records import InvalidDataError
from .models.io import ModelFileError, content_hash, load_model
from .registry import Registry
from .runtime import check_device, keep_freed_memory

__all__ = ["load", "ImageEmbedder", "SpectrumEmbedder", "AlignedEmbedder", "EMBEDDERS",
           "fill_padded_wavelengths", "prepare_stored_spectra"]


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)  # a clear DeviceUnavailableError, not torch's assertion at the first .to()
    return torch.device(device)


class _Embedder:
    """What every exported model shares: where it came from, its config, its device, its identity."""

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], path: Path,
                 device: str | torch.device | None = None):
        self.path = Path(path)
        self.config = config
        self.device = _device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # faster CPU forward passes: see astroembed/runtime.py and BENCHMARKS.md
        self.model = model.to(self.device).eval()
        self.embed_dim = int(config["embed_dim"])

    @property
    def name(self) -> str:
        return self.path.parent.name if self.path.name == "model" else self.path.name

    @property
    def content_hash(self) -> str:
        return content_hash(self.path)


class ImageEmbedder(_Embedder):
    """An image encoder plus its saved preprocessing."""

    modality = "image"

    def __init__(self, encoder: torch.nn.Module, config: dict[str, Any], path: Path,
                 device: str | torch.device | None = None):
        super().__init__(encoder, config, path, device)
        self.preprocess_config = PreprocessConfig.from_dict(config["preprocessing"])
        self.bands = tuple(config["bands"])

    @property
    def encoder(self) -> torch.nn.Module:
        return self.model

    def prepare(self, images) -> torch.Tensor:
        """Raw cutouts as stored -> network input on the model's device."""
        x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
        if not isinstance(x, torch.Tensor):
            raise InvalidDataError(f"expected a numpy array or tensor, got {type(images).__name__}",
                                   field="image_array")
        if x.ndim == 3:  # a single cutout
            x = x[None]
        if x.ndim != 4:
            raise InvalidDataError(f"expected (N, bands, H, W) flux or (N, H, W, 3) uint8, got shape "
                                   f"{tuple(x.shape)}", field="image_array")
        rgb = self.preprocess_config.mode == "rgb"
        if rgb and x.dtype == torch.uint8:
            if x.shape[-1] != 3:
                raise InvalidDataError(f"uint8 cutouts must be (N, H, W, 3), got {tuple(x.shape)}",
                                       field="image_array")
            x = x.permute(0, 3, 1, 2)
        elif x.shape[1] != len(self.bands):
            raise InvalidDataError(f"the model expects {len(self.bands)} bands {list(self.bands)}, the input "
                                   f"has {x.shape[1]} (shape {tuple(x.shape)})", field="image_band")
        x = x.to(self.device, torch.float32)
        if not torch.isfinite(x.sum()):  # one reduction; a sum is finite iff every pixel is
            # Documented masking, as for records: non-finite pixels carry no information -> 0.
            x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        x = standardize(x, self.preprocess_config)
        return preprocess(x, self.preprocess_config, self.bands)

    @torch.inference_mode()
    def embed(self, images, batch_size: int = 256) -> np.ndarray:
        """(N, D) float32 embeddings of raw cutouts (numpy or torch, any device); one cutout -> (1, D)."""
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        if isinstance(images, torch.Tensor) and images.ndim == 3:
            images = images[None]
        if len(images) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self.encoder(self.prepare(images[i:i + batch_size])).float().cpu().numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    __call__ = embed


# ----------------------------------------------------------------------------------------- spectra

def fill_padded_wavelengths(flux, ivar, wavelength, mask=None):
    """Give the padding of stored spectra valid, masked wavelengths, so they can be resampled.

    MMU files and :class:`~astroembed.data.dataset.MMUDataset` pad shorter spectra at the end with
    wavelength -1 (mask False). Resampling needs strictly increasing wavelengths, so each trailing run
    of wavelengths <= 0 is replaced by the row's last real wavelength plus multiples of its last step
    (the last real pixel keeps its edges) and masked out. Rows without padding pass unchanged; input
    without any padding is returned as given (no copy).

    Returns:
        ``(flux, ivar, wavelength, mask)``; wavelength and mask are float64 / bool tensors when padding
        was filled.

    Raises:
        InvalidDataError (field ``spectrum_lambda``): non-positive wavelengths that are not a trailing
        run, or a row with fewer than 2 real wavelengths.
    """
    if wavelength is None or isinstance(flux, (list, tuple)):
        return flux, ivar, wavelength, mask
    try:
        lam = torch.as_tensor(np.asarray(wavelength, dtype=np.float64)) if not isinstance(wavelength, torch.Tensor) \
            else wavelength.to(torch.float64)
    except (TypeError, ValueError):
        return flux, ivar, wavelength, mask  # prepare_batch reports unreadable input, naming the field
    n = lam.shape[-1] if lam.ndim else 0
    if lam.ndim not in (1, 2) or n < 2 or not bool((lam <= 0).any()):
        return flux, ivar, wavelength, mask
    rows = lam.reshape(-1, n)
    real = rows > 0
    n_real = real.sum(-1)
    trailing = (real == (torch.arange(n, device=rows.device) < n_real[:, None])).all(-1)
    if not bool(trailing.all()):
        row = int(torch.nonzero(~trailing)[0])
        raise InvalidDataError(f"row {row} has wavelengths <= 0 inside the spectrum; only a trailing run "
                               f"(the -1 padding of stored spectra) is allowed", field="spectrum_lambda")
    if bool((n_real < 2).any()):
        row = int(torch.nonzero(n_real < 2)[0])
        raise InvalidDataError(f"row {row} has {int(n_real[row])} real wavelengths (the rest is padding); "
                               f"a spectrum needs at least 2", field="spectrum_lambda")
    last = rows.gather(-1, (n_real - 1)[:, None])
    step = last - rows.gather(-1, (n_real - 2)[:, None])
    k = torch.arange(n, device=rows.device, dtype=rows.dtype) - (n_real - 1)[:, None]
    filled = torch.where(real, rows, last + k * step).reshape(lam.shape)
    pad = ~real.reshape(lam.shape)
    flux_shape = tuple(flux.shape) if hasattr(flux, "shape") else np.shape(flux)
    if tuple(pad.shape) != tuple(flux_shape):
        if pad.ndim != 1 or flux_shape[-1:] != (n,):
            return flux, ivar, wavelength, mask  # shape mismatch: prepare_batch names the field
        pad = pad.expand(*flux_shape)
    if mask is None:
        mask = ~pad
    else:
        m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask).astype(bool))
        if tuple(m.shape) != tuple(pad.shape):
            return flux, ivar, wavelength, mask  # prepare_batch reports the mask shape mismatch
        mask = m.to(pad.device).bool() & ~pad
    return flux, ivar, filled, mask


def prepare_stored_spectra(flux, ivar=None, wavelength=None, mask=None,
                           config: SpectrumPreprocessConfig | None = None,
                           device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Spectra as stored (any grid, MMU -1 padding allowed) -> the spectrum transformer's input batch.

    Args:
        flux: (N, n_pix) or (n_pix,) array/tensor, or a list of :class:`~astroembed.data.records.Spectrum`
            records (or Galaxy records with a spectrum), each on its own grid and length.
        ivar, mask: like flux (``None``: all ones / all good); ignored for records.
        wavelength: (n_pix,) shared or (N, n_pix) per row, Angstrom, strictly increasing apart from a
            trailing run of padding (<= 0); required for arrays.
        config: the model's saved preprocessing.
        device: where the batch goes.
    """
    if isinstance(flux, (list, tuple)):
        records = [getattr(s, "spectrum", s) for s in flux]
        for i, s in enumerate(records):
            if s is None or not hasattr(s, "wavelength"):
                raise InvalidDataError(f"item {i} is not a Spectrum record (got {type(flux[i]).__name__})",
                                       field="spectrum_flux")
        return prepare_spectra(records, config, device=device)
    if wavelength is None:
        raise InvalidDataError("wavelengths are required for flux arrays (or pass Spectrum records)",
                               field="spectrum_lambda")
    flux, ivar, wavelength, mask = fill_padded_wavelengths(flux, ivar, wavelength, mask)
    return prepare_batch(flux, ivar, mask, wavelength, config, device=device)


def _ndim(x) -> int:
    return x.ndim if hasattr(x, "ndim") else np.ndim(x)


def _rows(x, start: int, stop: int, n: int):
    """Rows start:stop of a per-row input; shared (1-D) or absent inputs pass through."""
    if x is None or isinstance(x, (list, tuple)) and len(x) != n:
        return x
    if not isinstance(x, (list, tuple)) and _ndim(x) < 2:
        return x
    return x[start:stop]


def _n_rows(flux) -> int:
    if isinstance(flux, (list, tuple)):
        return len(flux)
    return 1 if _ndim(flux) == 1 else len(flux)


class SpectrumEmbedder(_Embedder):
    """A spectrum transformer plus its saved preprocessing (model grid, normalisation, patching)."""

    modality = "spectrum"

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], path: Path,
                 device: str | torch.device | None = None):
        super().__init__(model, config, path, device)
        self.preprocess_config = SpectrumPreprocessConfig.from_dict(config["preprocessing"])

    def prepare(self, flux, ivar=None, wavelength=None, mask=None) -> dict[str, torch.Tensor]:
        """Spectra as stored -> the model's input batch on the model's device."""
        return prepare_stored_spectra(flux, ivar, wavelength, mask, self.preprocess_config, self.device)

    def _batches(self, flux, ivar, wavelength, mask, batch_size: int):
        n = _n_rows(flux)
        if n and not isinstance(flux, (list, tuple)) and _ndim(flux) == 1:
            yield self.prepare(flux, ivar, wavelength, mask)
            return
        if wavelength is not None and not isinstance(flux, (list, tuple)) and _ndim(wavelength) == 2 \
                and len(wavelength) != n:
            raise InvalidDataError(f"{len(wavelength)} wavelength rows for {n} spectra",
                                   field="spectrum_lambda")
        for i in range(0, n, batch_size):
            yield self.prepare(_rows(flux, i, i + batch_size, n), _rows(ivar, i, i + batch_size, n),
                               _rows(wavelength, i, i + batch_size, n), _rows(mask, i, i + batch_size, n))

    @torch.inference_mode()
    def embed_spectrum(self, flux, ivar=None, wavelength=None, mask=None, batch_size: int = 256) -> np.ndarray:
        """(N, D) float32 embeddings of spectra as stored, on any wavelength grid.

        Args:
            flux: (N, n_pix) or (n_pix,) numpy/torch, or a list of Spectrum records (different lengths).
            ivar: like flux, inverse variance (``None``: ones).
            wavelength: (n_pix,) shared or (N, n_pix) per row (SDSS log-lambda, DESI linear, MMU padded).
            mask: like flux, True = good (``None``: all good).
            batch_size: spectra per forward pass.
        """
        if _n_rows(flux) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self.model(b).float().cpu().numpy() for b in self._batches(flux, ivar, wavelength, mask, batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    embed = embed_spectrum
    __call__ = embed_spectrum


# ----------------------------------------------------------------------------------------- aligned

class AlignedEmbedder(_Embedder):
    """Image and spectrum encoders aligned by CLIP: both modalities into one L2-normalised space.

    ``embed(images)`` and ``embed_spectrum(flux, ivar, wavelength, mask)`` return (N, D) float32 unit
    vectors; ``similarity`` scores them against each other (cosine), for cross-modal retrieval.
    """

    modality = "aligned"
    modalities = ("image", "spectrum")

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], path: Path,
                 device: str | torch.device | None = None):
        super().__init__(model, config, path, device)
        pre = config["preprocessing"]
        self.bands = tuple(config["bands"])
        self._image = ImageEmbedder(model.image_encoder, {"preprocessing": pre["image"], "bands": self.bands,
                                                          "embed_dim": model.image_encoder.embed_dim},
                                    path, self.device)
        self._spectrum = SpectrumEmbedder(model.spectrum_encoder, {"preprocessing": pre["spectrum"],
                                                                   "embed_dim": model.spectrum_encoder.embed_dim},
                                          path, self.device)
        self.preprocess_config = self._image.preprocess_config
        self.spectrum_preprocess_config = self._spectrum.preprocess_config

    @torch.inference_mode()
    def embed(self, images, batch_size: int = 256) -> np.ndarray:
        """(N, D) unit vectors in the shared space from raw cutouts (as ``ImageEmbedder.embed`` takes them)."""
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        if isinstance(images, torch.Tensor) and images.ndim == 3:
            images = images[None]
        if len(images) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self.model.embed_image(self._image.prepare(images[i:i + batch_size])).float().cpu().numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    embed_image = embed
    __call__ = embed

    @torch.inference_mode()
    def embed_spectrum(self, flux, ivar=None, wavelength=None, mask=None, batch_size: int = 256) -> np.ndarray:
        """(N, D) unit vectors in the shared space from spectra as stored (see ``SpectrumEmbedder``)."""
        if _n_rows(flux) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self.model.embed_spectrum(b).float().cpu().numpy()
               for b in self._spectrum._batches(flux, ivar, wavelength, mask, batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    @staticmethod
    def similarity(image_vectors, spectrum_vectors) -> np.ndarray:
        """(N_image, N_spectrum) cosine similarities; row i ranks the spectra for image i (and columns
        rank the images for each spectrum). Inputs are re-normalised, so any vectors of this space work."""
        a = np.asarray(image_vectors, dtype=np.float32)
        b = np.asarray(spectrum_vectors, dtype=np.float32)
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"expected (N, D) and (M, D) vectors of one space, got {a.shape} and {b.shape}")
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return a @ b.T


# model_type -> the class that embeds with such a model (a plugin registers its own with EMBEDDERS.register).
EMBEDDERS = Registry("embedder")
EMBEDDERS.register("image_encoder", ImageEmbedder)
EMBEDDERS.register("spectrum_transformer", SpectrumEmbedder)
EMBEDDERS.register("aligned", AlignedEmbedder)


def load(path, device: str | torch.device | None = "cpu"):
    """Load an exported model folder (``config.json`` + ``model.safetensors``) for embedding."""
    path = Path(path)
    if (path / "model" / "config.json").is_file() and not (path / "config.json").is_file():
        path = path / "model"  # a run folder was given
    module, config = load_model(path)
    model_type = config["model_type"]
    if model_type not in EMBEDDERS:
        raise InvalidDataError(f"model type {model_type!r} cannot embed; known: {EMBEDDERS.names()}",
                               source=str(path / "config.json"), field="model_type")
    try:
        return EMBEDDERS[model_type](module, config, path, device=device)
    except KeyError as exc:  # the embedders read config[...] directly: name the key and the file
        raise ModelFileError(f"lacks the key {exc.args[0]!r} that a {model_type!r} model needs "
                             f"(an incomplete or hand-edited export?)", source=str(path / "config.json"),
                             field=str(exc.args[0])) from None
