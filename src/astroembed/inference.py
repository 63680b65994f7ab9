"""`astroembed.load(path)`: an exported model that embeds data exactly as it is stored.

Imports no training code and needs no GPU. A model folder (``RUN/model``) holds ``config.json`` +
``model.safetensors``; the config carries the preprocessing the model was trained with, so

    model = astroembed.load("runs/image/model")
    vectors = model.embed(cutouts)          # (N, bands, H, W) raw flux, or (N, H, W, 3) uint8 RGB

returns an (N, D) float32 numpy array whatever the input's type or device. Spectrum models take
spectra as stored, on any wavelength grid (the saved preprocessing resamples them):

    model = astroembed.load("runs/spectrum/model")
    vectors = model.embed_spectrum(flux, ivar, wavelength, mask)   # or a list of Spectrum records

photometry models take catalogue fluxes with their ivar and band names (missing bands are masked):

    model = astroembed.load("runs/photometry/model")
    vectors = model.embed_photometry(flux, ivar, bands=("u", "g", "r", "i", "z"))   # nanomaggies

and an aligned (CLIP) model embeds two or three of them into one space: ``.embed(images)``,
``.embed_spectrum(...)``, ``.embed_photometry(...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .preprocess.image import PreprocessConfig, preprocess, standardize
from .preprocess.photometry import PhotometryPreprocessConfig, band_columns, prepare_photometry
from .preprocess.spectrum import SpectrumPreprocessConfig
from .data.records import InvalidDataError
from .data.validate import band_order, check_spectrum_rows, check_wavelength_coverage
from .models.io import ModelFileError, content_hash, load_model
from .registry import Registry
from .preprocess.stored import prepare_stored_spectra
from .runtime import PRECISIONS, autocast, bf16_layout, keep_freed_memory, resolve_device, resolve_precision

__all__ = ["load", "ImageEmbedder", "SpectrumEmbedder", "PhotometryEmbedder", "AlignedEmbedder", "EMBEDDERS",
           "check_photometry"]


def _precision(precision: str, device: torch.device) -> str:
    # Embedding takes 32-bit or bf16 autocast only (Lightning's other precisions are training settings).
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected auto, 32-true or bf16-mixed")
    return resolve_precision(precision, device.type)


class _Embedder:
    """What every exported model shares: where it came from, its config, its device, its identity."""

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], path: Path,
                 device: str | torch.device | None = None, precision: str = "auto"):
        self.path = Path(path)
        self.config = config
        self.device = resolve_device(device)
        self.precision = _precision(precision, self.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # faster CPU forward passes: see astroembed/runtime.py and BENCHMARKS.md
        self.model = model.to(self.device).eval()
        self.embed_dim = int(config["embed_dim"])

    def _forward(self, network, batch) -> np.ndarray:
        """One forward pass in the embedder's precision; (B, D) float32 on the CPU whatever it computed in."""
        with autocast(self.device.type, self.precision):
            return network(batch).float().cpu().numpy()

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
                 device: str | torch.device | None = None, precision: str = "auto"):
        super().__init__(encoder, config, path, device, precision)
        bf16_layout(self.model, self.precision, self.device.type)  # NHWC: what bf16 convolutions compute in
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
    def embed(self, images, batch_size: int = 256, bands=None, bands_as=None, object_ids=None,
              source=None) -> np.ndarray:
        """(N, D) float32 embeddings of raw cutouts (numpy or torch, any device); one cutout -> (1, D).

        Parameters
        ----------
        images
            (N, bands, H, W) flux or (N, H, W, 3) uint8 RGB; one cutout without the N axis.
        batch_size
            cutouts per forward pass.
        bands
            names of the input planes, checked against the model's ``bands`` (planes are
            reordered or picked by name; a missing band is an error). ``None``: the planes are taken
            to be the model's bands, in its order (only their number is checked).
        bands_as
            declare that the planes, in order, are these bands (e.g. ``("g", "r", "z")`` for
            u,g,r cutouts through a g,r,z model); see :func:`astroembed.data.validate.band_order`.
        object_ids, source
            what the cutouts are and where they came from, for error messages.
        """
        images = _select_planes(images, self.bands, bands, bands_as, object_ids, source)
        if len(images) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self._forward(self.encoder, self.prepare(images[i:i + batch_size]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    __call__ = embed


def _select_planes(images, model_bands, bands=None, bands_as=None, object_ids=None, source=None):
    """Cutouts as a tensor with an N axis, their planes in the model's band order (checked by name)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if isinstance(images, torch.Tensor) and images.ndim == 3:
        images = images[None]
    if bands is None and bands_as is None:
        return images
    data_bands, declared = (bands_as, None) if bands is None else (bands, bands_as)
    # The band list describes every cutout of the call: an error names the first of them.
    where = {"source": source, "object_id": str(object_ids[0]) if object_ids is not None and len(object_ids)
             else None}
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != len(data_bands):
        raise InvalidDataError(f"{len(data_bands)} band names {list(data_bands)} for input of shape "
                               f"{tuple(getattr(images, 'shape', ()))} (expected (N, bands, H, W))",
                               field="image_band", **where)
    planes = band_order(data_bands, model_bands, declared, **where)
    return images if planes is None else images[:, planes.tolist()]


# ----------------------------------------------------------------------------------------- spectra

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


def _as_numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _check_spectra(flux, ivar, wavelength, config: SpectrumPreprocessConfig, object_ids=None, source=None):
    """The shared spectrum rules and the model's grid coverage, over the whole input before batching, so
    that an error names the object (``object_ids[i]`` or its index in the input), never a batch row.
    Inputs whose shapes do not fit are left to prepare_batch, which names the field."""
    n = _n_rows(flux)
    names = [str(i) for i in object_ids] if object_ids is not None else [f"#{i} of the input" for i in range(n)]
    if len(names) != n:
        raise InvalidDataError(f"{len(names)} object ids for {n} spectra", source=source, field="object_id")
    grid = (config.wave_min, config.wave_max)
    if isinstance(flux, (list, tuple)):
        for i, item in enumerate(flux):
            s = getattr(item, "spectrum", item)
            if s is not None and hasattr(s, "wavelength"):
                check_spectrum_rows(_as_numpy(s.wavelength)[None], names[i:i + 1], source)
                check_wavelength_coverage(_as_numpy(s.wavelength), grid, names[i:i + 1], source)
        return
    try:
        wave = _as_numpy(wavelength).astype(np.float64)
        shape = tuple(np.shape(flux))
    except (TypeError, ValueError):
        return
    rows = wave[None] if wave.ndim == 1 else wave
    if wave.ndim not in (1, 2) or not shape or wave.shape[-1] != shape[-1] or (wave.ndim == 2 and len(wave) != n):
        return
    row_names = names if wave.ndim == 2 else ["(the shared wavelength grid)"]
    w = _as_numpy(ivar).astype(np.float64) if ivar is not None and wave.ndim == 2 else None
    check_spectrum_rows(rows, row_names, source, w if w is not None and w.shape == rows.shape else None)
    check_wavelength_coverage(rows, grid, row_names, source)


class SpectrumEmbedder(_Embedder):
    """A spectrum transformer plus its saved preprocessing (model grid, normalisation, patching)."""

    modality = "spectrum"

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], path: Path,
                 device: str | torch.device | None = None, precision: str = "auto"):
        super().__init__(model, config, path, device, precision)
        self.preprocess_config = SpectrumPreprocessConfig.from_dict(config["preprocessing"])

    def prepare(self, flux, ivar=None, wavelength=None, mask=None) -> dict[str, torch.Tensor]:
        """Spectra as stored -> the model's input batch on the model's device."""
        return prepare_stored_spectra(flux, ivar, wavelength, mask, self.preprocess_config, self.device)

    def _batches(self, flux, ivar, wavelength, mask, batch_size: int, object_ids=None, source=None):
        n = _n_rows(flux)
        _check_spectra(flux, ivar, wavelength, self.preprocess_config, object_ids, source)
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
    def embed_spectrum(self, flux, ivar=None, wavelength=None, mask=None, batch_size: int = 256,
                       object_ids=None, source=None) -> np.ndarray:
        """(N, D) float32 embeddings of spectra as stored, on any wavelength grid.

        Spectra are checked against the model first (:mod:`astroembed.data.validate`): wavelengths
        finite, strictly increasing (trailing -1 padding allowed), ivar >= 0, and covering at least
        ``MIN_GRID_COVERAGE`` of the model's grid in Angstrom (nm, micron and log10 values are named as
        such). Errors name ``object_ids[i]`` (default: the spectrum's index in the input) and ``source``.

        Parameters
        ----------
        flux
            (N, n_pix) or (n_pix,) numpy/torch, or a list of Spectrum records (different lengths).
        ivar
            like flux, inverse variance (``None``: ones).
        wavelength
            (n_pix,) shared or (N, n_pix) per row (SDSS log-lambda, DESI linear, MMU padded).
        mask
            like flux, True = good (``None``: all good).
        batch_size
            spectra per forward pass.
        object_ids, source
            names of the spectra and of their file, for error messages.
        """
        if _n_rows(flux) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self._forward(self.model, b)
               for b in self._batches(flux, ivar, wavelength, mask, batch_size, object_ids, source)]
        return np.concatenate(out).astype(np.float32, copy=False)

    embed = embed_spectrum
    __call__ = embed_spectrum


# ----------------------------------------------------------------------------------------- photometry

def _as_rows(x, field: str, source=None) -> np.ndarray:
    """A per-band input as float64 (N, K) (one galaxy's (K,) -> (1, K)); anything else names its field."""
    try:
        a = np.asarray(_as_numpy(x), dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidDataError(f"expected numbers, got {type(x).__name__}", source=source, field=field) from None
    a = a[None] if a.ndim == 1 else a
    if a.ndim != 2:
        raise InvalidDataError(f"expected (N, bands) or (bands,), got shape {a.shape}", source=source, field=field)
    return a


def check_photometry(flux, ivar, bands, model_bands, object_ids=None, source=None):
    """Catalogue fluxes as the photometry embedders take them: (flux, ivar) float64 (N, K) and the band names.

    ``ivar=None`` means unknown (ones). ``bands=None`` means the model's bands, in order. Errors name the
    field, and the object (``object_ids[i]`` or its index in the input) where one row is at fault:
    shapes that disagree, a band list of another length, negative ivar, a galaxy with no usable band of
    the model's. NaN/inf fluxes or ivars are masked (the documented masking of records).
    """
    flux = _as_rows(flux, "photometry_flux", source)
    ivar = np.ones_like(flux) if ivar is None else _as_rows(ivar, "photometry_ivar", source)
    if ivar.shape != flux.shape:
        raise InvalidDataError(f"ivar shape {ivar.shape} differs from flux shape {flux.shape}", source=source,
                               field="photometry_ivar")
    n = len(flux)
    names = [str(i) for i in object_ids] if object_ids is not None else [f"#{i} of the input" for i in range(n)]
    if len(names) != n:
        raise InvalidDataError(f"{len(names)} object ids for {n} galaxies", source=source, field="object_id")
    bands = tuple(model_bands) if bands is None else tuple(str(b) for b in bands)
    if len(bands) != flux.shape[1]:
        raise InvalidDataError(f"{len(bands)} band names {list(bands)} for {flux.shape[1]} fluxes per galaxy "
                               f"(the model's bands are {list(model_bands)})", source=source, field="photometry_band")
    negative = np.flatnonzero((ivar < 0).any(axis=1))
    if negative.size:
        raise InvalidDataError("negative inverse variance", source=source, object_id=names[negative[0]],
                               field="photometry_ivar")
    columns = band_columns(bands, model_bands, source, names[0] if n else None)
    usable = (np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0))[:, columns[columns >= 0]]
    empty = np.flatnonzero(~usable.any(axis=1))
    if empty.size:
        raise InvalidDataError(f"no usable flux in the model's bands {list(model_bands)} (all missing, "
                               "non-finite or ivar 0)", source=source, object_id=names[empty[0]],
                               field="photometry_flux")
    return flux, ivar, bands


class PhotometryEmbedder(_Embedder):
    """A photometry encoder plus its saved preprocessing (bands, softening, standardisation)."""

    modality = "photometry"

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], path: Path,
                 device: str | torch.device | None = None, precision: str = "auto"):
        super().__init__(model, config, path, device, precision)
        self.photometry_preprocess_config = PhotometryPreprocessConfig.from_dict(config["preprocessing"])
        self.photometry_bands = self.photometry_preprocess_config.bands

    def _batches(self, flux, ivar, bands, batch_size: int, object_ids=None, source=None):
        flux, ivar, bands = check_photometry(flux, ivar, bands, self.photometry_bands, object_ids, source)
        for i in range(0, len(flux), batch_size):
            yield prepare_photometry(flux[i:i + batch_size], ivar[i:i + batch_size], bands,
                                     self.photometry_preprocess_config, self.device)

    @torch.inference_mode()
    def embed_photometry(self, flux, ivar=None, bands=None, batch_size: int = 1024, object_ids=None,
                         source=None) -> np.ndarray:
        """(N, D) float32 embeddings of catalogue photometry.

        Parameters
        ----------
        flux
            (N, K) or (K,) fluxes in the survey's unit (the model's ``unit``: nanomaggies for SDSS and
            the Legacy Surveys), numpy or torch.
        ivar
            like flux, inverse variances (``None``: unknown, taken as 1). ivar 0 or a NaN/inf value
            marks a band as missing: it is masked, not read as zero flux.
        bands
            the K band names of the columns (``None``: the model's bands, in order). Bands the model was
            not trained on are left out; model bands the input lacks are masked.
        batch_size
            galaxies per forward pass.
        object_ids, source
            names of the galaxies and of their file, for error messages.
        """
        if _n_rows(flux) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self._forward(self.model, b) for b in self._batches(flux, ivar, bands, batch_size, object_ids, source)]
        return np.concatenate(out).astype(np.float32, copy=False)

    embed = embed_photometry
    __call__ = embed_photometry


# ----------------------------------------------------------------------------------------- aligned

class AlignedEmbedder(_Embedder):
    """Two or three encoders aligned by CLIP: each modality into one L2-normalised space.

    ``embed(images)``, ``embed_spectrum(flux, ivar, wavelength, mask)`` and ``embed_photometry(flux, ivar,
    bands)`` return (N, D) float32 unit vectors (each where the model has that encoder: ``modalities``);
    ``similarity`` scores them against each other (cosine), for cross-modal retrieval.

    ``precision="auto"`` embeds in 32 bits here, unlike the single-modality embedders: the heads standardise
    features whose differences between galaxies are a few % of their common value, and bfloat16's 0.4 %
    steps in the image encoder cost 0.035-0.05 of held-out top-1 % recall on the main job's models
    (BENCHMARKS.md, "Measured fluxes in the alignment"; ``experiments/aligned_precision.py``). Pass
    ``precision="bf16-mixed"`` to trade that for speed.
    """

    modality = "aligned"

    def __init__(self, model: torch.nn.Module, config: dict[str, Any], path: Path,
                 device: str | torch.device | None = None, precision: str = "auto"):
        super().__init__(model, config, path, device, "32-true" if precision == "auto" else precision)
        pre = config["preprocessing"]
        self.modalities = tuple(model.modalities)
        if "image" in self.modalities:
            self.bands = tuple(config["bands"])
            self._image = ImageEmbedder(model.image_encoder, {"preprocessing": pre["image"], "bands": self.bands,
                                                              "embed_dim": model.image_encoder.embed_dim},
                                        path, self.device, self.precision)
            self.preprocess_config = self._image.preprocess_config
        if "spectrum" in self.modalities:
            self._spectrum = SpectrumEmbedder(model.spectrum_encoder, {"preprocessing": pre["spectrum"],
                                                                       "embed_dim": model.spectrum_encoder.embed_dim},
                                              path, self.device, self.precision)
            self.spectrum_preprocess_config = self._spectrum.preprocess_config
        if "photometry" in self.modalities:
            self._photometry = PhotometryEmbedder(model.photometry_encoder, {
                "preprocessing": pre["photometry"], "embed_dim": model.photometry_encoder.embed_dim},
                path, self.device, self.precision)
            self.photometry_preprocess_config = self._photometry.photometry_preprocess_config
            self.photometry_bands = self._photometry.photometry_bands

    def _require(self, modality: str) -> None:
        if modality not in self.modalities:
            raise InvalidDataError(f"this aligned model has no {modality} encoder; it aligns {list(self.modalities)}",
                                   source=str(self.path / "config.json"), field="modalities")

    @torch.inference_mode()
    def embed(self, images, batch_size: int = 256, bands=None, bands_as=None, object_ids=None,
              source=None) -> np.ndarray:
        """(N, D) unit vectors in the shared space from raw cutouts (as ``ImageEmbedder.embed`` takes them,
        with the same band-name checks)."""
        self._require("image")
        images = _select_planes(images, self.bands, bands, bands_as, object_ids, source)
        if len(images) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self._forward(self.model.embed_image, self._image.prepare(images[i:i + batch_size]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    embed_image = embed
    __call__ = embed

    @torch.inference_mode()
    def embed_spectrum(self, flux, ivar=None, wavelength=None, mask=None, batch_size: int = 256,
                       object_ids=None, source=None) -> np.ndarray:
        """(N, D) unit vectors in the shared space from spectra as stored (see ``SpectrumEmbedder``)."""
        self._require("spectrum")
        if _n_rows(flux) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self._forward(self.model.embed_spectrum, b)
               for b in self._spectrum._batches(flux, ivar, wavelength, mask, batch_size, object_ids, source)]
        return np.concatenate(out).astype(np.float32, copy=False)

    @torch.inference_mode()
    def embed_photometry(self, flux, ivar=None, bands=None, batch_size: int = 1024, object_ids=None,
                         source=None) -> np.ndarray:
        """(N, D) unit vectors in the shared space from catalogue fluxes (see ``PhotometryEmbedder``)."""
        self._require("photometry")
        if _n_rows(flux) == 0:
            return np.zeros((0, self.embed_dim), np.float32)
        out = [self._forward(self.model.embed_photometry, b)
               for b in self._photometry._batches(flux, ivar, bands, batch_size, object_ids, source)]
        return np.concatenate(out).astype(np.float32, copy=False)

    @staticmethod
    def similarity(image_vectors, spectrum_vectors) -> np.ndarray:
        """(N_a, N_b) cosine similarities between vectors of two modalities of this space (e.g. images and
        spectra: row i ranks the spectra for image i, columns rank the images for each spectrum). Inputs
        are re-normalised, so any vectors of this space work."""
        a = np.asarray(image_vectors, dtype=np.float32)
        b = np.asarray(spectrum_vectors, dtype=np.float32)
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"expected (N, D) and (M, D) vectors of one space, got {a.shape} and {b.shape}")
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return a @ b.T

    @torch.inference_mode()
    def predict_spectrum(self, images=None, photometry=None, normalised: bool = False, batch_size: int = 256,
                         **image_options) -> tuple[np.ndarray, np.ndarray]:
        """Spectra predicted from the shared space by the decoder saved beside this model.

        Parameters
        ----------
        images
            raw cutouts, as :meth:`embed` takes them (``image_options``: ``bands``, ``bands_as``, ...).
        photometry
            a mapping ``{"flux", "ivar", "bands"}`` passed to ``embed_photometry`` (fluxes in the survey's
            unit); only for models aligned with a photometry encoder.
        normalised
            return each spectrum divided by its predicted scale (median |flux| = 1, the spectrum model's
            normalisation) instead of in the survey's flux unit (1e-17 erg/s/cm^2/A).
        batch_size
            galaxies per forward pass.

        Returns
        -------
        ``(wavelength, flux)``: the model grid (L,) in Angstrom (float64) and (N, L) float32 flux. Given
        both inputs, the decoder reads the normalised mean of the two shared-space vectors.

        Raises
        ------
        InvalidDataError
            no input, photometry for a model without a photometry encoder, or no decoder saved
            (``astroembed train-spectrum-decoder`` trains one).
        """
        if images is None and photometry is None:
            raise InvalidDataError("give images, photometry or both", field="images")
        vectors = [] if images is None else [self.embed(images, batch_size, **image_options)]
        if photometry is not None:
            if "photometry" not in self.modalities:
                raise InvalidDataError(f"the model has no photometry encoder (it aligns {list(self.modalities)})",
                                       source=str(self.path), field="photometry")
            if not isinstance(photometry, dict) or not {"flux", "ivar", "bands"} <= set(photometry):
                raise InvalidDataError("photometry must be a mapping with keys flux, ivar and bands",
                                       field="photometry")
            vectors.append(self.embed_photometry(**photometry))
        if len(vectors) == 2 and len(vectors[0]) != len(vectors[1]):
            raise InvalidDataError(f"{len(vectors[0])} images but {len(vectors[1])} photometry rows",
                                   field="photometry")
        return self.decode_spectrum(vectors[0] if len(vectors) == 1 else vectors[0] + vectors[1], normalised,
                                    batch_size)

    @torch.inference_mode()
    def decode_spectrum(self, vectors, normalised: bool = False, batch_size: int = 256
                        ) -> tuple[np.ndarray, np.ndarray]:
        """``predict_spectrum`` from (N, D) shared-space vectors (re-normalised to unit length first)."""
        from .models.spectrum_decoder import load_decoder

        if getattr(self, "_decoder", None) is None:
            self._decoder = load_decoder(self.path)[0].to(self.device).eval()
        z = np.atleast_2d(np.asarray(vectors, np.float32))
        if z.ndim != 2 or z.shape[1] != self._decoder.input_dim or not np.isfinite(z).all():
            raise InvalidDataError(f"expected finite (N, {self._decoder.input_dim}) vectors of the shared space, "
                                   f"got shape {z.shape}", field="vectors")
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        parts = [np.zeros((0, self._decoder.n_pixels), np.float32)]
        for i in range(0, len(z), batch_size):
            shape, log10_scale = self._decoder(torch.from_numpy(z[i:i + batch_size]).to(self.device))
            parts.append((shape if normalised else shape * 10.0 ** log10_scale[:, None]).float().cpu().numpy())
        return self.spectrum_preprocess_config.grid, np.concatenate(parts)


# model_type -> the class that embeds with such a model (a plugin registers its own with EMBEDDERS.register).
EMBEDDERS = Registry("embedder")
EMBEDDERS.register("image_encoder", ImageEmbedder)
EMBEDDERS.register("spectrum_transformer", SpectrumEmbedder)
EMBEDDERS.register("aligned", AlignedEmbedder)
EMBEDDERS.register("photometry_encoder", PhotometryEmbedder)


def load(path, device: str | torch.device | None = "cpu", precision: str = "auto"):
    """Load an exported model folder (``config.json`` + ``model.safetensors``) for embedding.

    Parameters
    ----------
    path
        the model folder, or the run folder holding it as ``model/``.
    device
        "cpu", "cuda", "cuda:N" or "auto".
    precision
        "auto" (bf16 autocast around the forward pass where the device has bf16 units, see
        :func:`astroembed.runtime.resolve_precision`; 32-bit elsewhere, and for aligned models, whose retrieval
        bf16 degrades), "32-true" or "bf16-mixed". The weights stay float32 and embeddings are returned as
        float32 in every case.
    """
    path = Path(path)
    if (path / "model" / "config.json").is_file() and not (path / "config.json").is_file():
        path = path / "model"  # a run folder was given
    module, config = load_model(path)
    model_type = config["model_type"]
    if model_type not in EMBEDDERS:
        raise InvalidDataError(f"model type {model_type!r} cannot embed; known: {EMBEDDERS.names()}",
                               source=str(path / "config.json"), field="model_type")
    try:
        return EMBEDDERS[model_type](module, config, path, device=device, precision=precision)
    except KeyError as exc:  # the embedders read config[...] directly: name the key and the file
        raise ModelFileError(f"lacks the key {exc.args[0]!r} that a {model_type!r} model needs "
                             f"(an incomplete or hand-edited export?)", source=str(path / "config.json"),
                             field=str(exc.args[0])) from None
