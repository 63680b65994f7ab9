"""Batch assembly of the alignment stage: each modality's stored arrays -> its encoder's input, and which
galaxies of the batch have that modality at all.

Per step, on the training device:

- image: cutouts -> optional light augmentation -> the image model's saved preprocessing;
- spectrum: stored spectra -> optional spectrum augmentation -> the spectrum model's saved preprocessing
  (resample, normalise, patch);
- photometry: catalogue fluxes in the survey's bands -> the model's bands (by name; a model band the
  survey lacks is masked) -> optional noise / reddening / band-dropout augmentation -> arcsinh magnitudes.

A galaxy *has* a modality when its stored arrays hold data: an image with any unmasked non-zero pixel
(the survey writer fills a missing image with zeros and an unknown mask), a spectrum with any valid
pixel, photometry with any valid band of the model's. Pairs a galaxy lacks are masked out of the
alignment loss; the pairs it has still train.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..augment.image import ImageAugmenter
from ..augment.photometry import PhotometryAugmentConfig, augment_photometry
from ..augment.spectrum import SpectrumAugmentConfig, augment_spectra
from ..data.records import InvalidDataError
from ..preprocess.image import PreprocessConfig, preprocess, standardize
from ..preprocess.photometry import (PhotometryPreprocessConfig, band_columns, fit_photometry_preprocess,
                                     photometry_features)
from ..preprocess.spectrum import SpectrumPreprocessConfig, prepare_batch
from ..preprocess.stored import fill_padded_wavelengths

__all__ = ["AlignmentInputs", "fit_training_photometry", "survey_photometry", "survey_photometry_bands"]


class AlignmentInputs(nn.Module):
    """The encoders' inputs of one batch; an ``nn.Module`` so the image augmenter moves with the model."""

    def __init__(self, image: PreprocessConfig | None = None, bands: Sequence[str] = (),
                 image_augment=None, spectrum: SpectrumPreprocessConfig | None = None,
                 spectrum_augment: SpectrumAugmentConfig | None = None,
                 photometry: PhotometryPreprocessConfig | None = None, survey_photometry_bands: Sequence[str] = (),
                 photometry_augment: PhotometryAugmentConfig | None = None):
        super().__init__()
        self.image_preprocess, self.bands = image, tuple(bands)
        self.augmenter = ImageAugmenter(image_augment) if image is not None and image_augment is not None else None
        self.spectrum_preprocess, self.spectrum_augment = spectrum, spectrum_augment
        self.photometry_preprocess, self.photometry_augment = photometry, photometry_augment
        if photometry is not None:
            # For each model band, the survey column holding it (-1: masked for every galaxy).
            self.photometry_columns = band_columns(survey_photometry_bands, photometry.bands)

    def images(self, batch) -> torch.Tensor:
        flux = standardize(batch["image"].float(), self.image_preprocess)
        if self.augmenter is not None and self.training:
            ivar = batch["image_ivar"] if bool(batch["image_has_ivar"].all()) else None
            scale = float(batch["pixel_scale"][0])
            flux = self.augmenter(flux, self.bands, ivar=ivar, psf_fwhm=batch.get("psf_fwhm"),
                                  pixel_scale=scale if np.isfinite(scale) and scale > 0 else 0.262)
        return preprocess(flux, self.image_preprocess, self.bands)

    def spectra(self, batch) -> dict[str, torch.Tensor]:
        flux, ivar, lam, mask = (batch[k] for k in ("spectrum_flux", "spectrum_ivar", "spectrum_lambda",
                                                    "spectrum_mask"))
        absent = ~(lam > 0).any(1)
        if bool(absent.any()):
            # Galaxies without a spectrum (all padding): a placeholder grid, every pixel masked, so the
            # batch prepares; the loss masks their pairs out.
            pre = self.spectrum_preprocess
            grid = torch.linspace(pre.wave_min, pre.wave_max, lam.shape[1], device=lam.device, dtype=lam.dtype)
            lam = torch.where(absent[:, None], grid[None], lam)
            mask = mask & ~absent[:, None]
            ivar = torch.where(absent[:, None], torch.zeros_like(ivar), ivar)
        flux, ivar, lam, mask = fill_padded_wavelengths(flux, ivar, lam, mask)
        if self.spectrum_augment is not None and self.training:
            flux, ivar, mask = augment_spectra(flux, ivar, mask, lam, self.spectrum_augment)
        return prepare_batch(flux, ivar, mask, lam, self.spectrum_preprocess)

    def _model_band_photometry(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        columns = torch.as_tensor(self.photometry_columns, device=batch["photometry_flux"].device)
        present = (columns >= 0)[None]
        take = columns.clamp(min=0)
        zero = torch.zeros((), device=columns.device)
        return (torch.where(present, batch["photometry_flux"].float()[:, take], zero),
                torch.where(present, batch["photometry_ivar"].float()[:, take], zero))

    def photometry(self, batch, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        flux, ivar = self._model_band_photometry(batch)
        if self.photometry_augment is not None and self.training:
            flux, ivar = augment_photometry(flux, ivar, self.photometry_preprocess.bands, self.photometry_augment,
                                            generator)
        return photometry_features(flux, ivar, self.photometry_preprocess)

    def inputs(self, modality: str, batch):
        return {"image": self.images, "spectrum": self.spectra, "photometry": self.photometry}[modality](batch)

    def present(self, modality: str, batch) -> torch.Tensor:
        """(N,) bool: which galaxies of the batch hold data in ``modality``."""
        if modality == "image":
            has_pixels = (batch["image"] != 0) & batch["image_mask"].bool()
            return has_pixels.flatten(1).any(1)
        if modality == "spectrum":
            return batch["spectrum_mask"].bool().any(1)
        flux, ivar = self._model_band_photometry(batch)
        return (torch.isfinite(flux) & (ivar > 0)).any(1)


def survey_photometry_bands(survey, indices: Sequence[int], source: str) -> tuple[str, ...]:
    """The photometry band names of a survey (of the first of ``indices`` with photometry)."""
    for index in list(indices)[:1000]:
        galaxy = survey.galaxy(int(index))
        if galaxy.photometry is not None:
            return tuple(galaxy.photometry.bands)
    raise InvalidDataError("no photometry among the first 1000 training objects", source=source,
                           field="photometry_flux")


def survey_photometry(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(N, P) flux and ivar of every object of an MMUDataset with the photometry modality (masking applied)."""
    flux, ivar = [], []
    for i in range(len(dataset)):
        sample = dataset[i]
        flux.append(sample["photometry_flux"])
        ivar.append(sample["photometry_ivar"])
    return np.stack(flux), np.stack(ivar)


def fit_training_photometry(dataset, bands: Sequence[str]) -> PhotometryPreprocessConfig:
    """Arcsinh softening and standardisation of a new photometry encoder, fitted on the galaxies of an
    MMUDataset (the training galaxies) in the survey's photometry ``bands``."""
    from ..data.dataset import MMUDataset

    only = MMUDataset(dataset.survey.path, modalities=("photometry",), indices=dataset.indices, survey=dataset.survey)
    flux, ivar = survey_photometry(only)
    return fit_photometry_preprocess(flux, ivar, bands)
