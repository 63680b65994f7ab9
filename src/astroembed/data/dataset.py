"""A torch Dataset over MMU tiles: lazy, random access, safe under multi-worker DataLoaders.

Samples are dicts of numpy arrays (the default collate turns them into batched tensors):

    index, object_id
    image, image_ivar, image_mask, image_has_ivar, psf_fwhm, pixel_scale          (modality "image")
    spectrum_flux, spectrum_ivar, spectrum_lambda, spectrum_mask, spectrum_lsf_sigma  (modality "spectrum")
    photometry_flux, photometry_ivar                                           (modality "photometry")
    one float32 entry per requested label

Bad values get the documented masking of :mod:`astroembed.data.records` (non-finite -> flux 0, ivar 0,
mask False; negative ivar -> InvalidDataError naming file, object and field). Columns are read with MMU's
meaning (:mod:`astroembed.data.mmu_conventions`), as :class:`~astroembed.data.mmu.MMUSurvey` reads them: in a
sample ``*_mask`` is True = good, ``spectrum_lsf_sigma`` is Angstrom (0 where unknown), an unknown PSF is NaN.
Spectra are padded to one length for the whole survey (lambda = -1, mask False), so tiles written with
different padding batch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import h5py
import numpy as np
from torch.utils.data import Dataset

from .mmu import MMUSurvey
from .mmu_conventions import (good_spectrum_mask, image_ivar_from_stored, image_mask_per_band, lsf_sigma_angstrom,
                              photometry_from_columns, psf_fwhm_or_unknown)
from .records import InvalidDataError, mask_bad_values

MODALITIES = ("image", "spectrum", "photometry")


class MMUDataset(Dataset):
    """Objects of an MMU survey as training samples.

    Parameters
    ----------
    path
        a tile file, or a folder holding tiles (e.g. ``<root>/<survey>/<config>``).
    modalities
        which observations each sample carries; objects lacking one are an error at
        access time unless ``require_all=False`` (then they are skipped at construction).
    labels
        label columns to include as float32 (NaN where missing).
    indices
        restrict to these rows (e.g. a train/test split).
    transform
        optional callable applied to each sample dict.
    spectrum_mask, lsf_sigma_unit
        for tiles whose origin does not say what their spectrum mask and
        lsf mean (passed to :class:`~astroembed.data.mmu.MMUSurvey`).
    """

    def __init__(self, path, modalities: Sequence[str] = ("image",), labels: Sequence[str] = (),
                 indices: Sequence[int] | None = None, transform: Callable | None = None,
                 survey: MMUSurvey | None = None, spectrum_mask: str | None = None,
                 lsf_sigma_unit: str | None = None):
        self.survey = survey if survey is not None else MMUSurvey(path, spectrum_mask=spectrum_mask,
                                                                  lsf_sigma_unit=lsf_sigma_unit)
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown:
            raise ValueError(f"unknown modalities {unknown}; choose from {MODALITIES}")
        missing = [m for m in modalities if m not in self.survey.modalities]
        if missing:
            raise InvalidDataError(f"survey has no {missing} (it has {self.survey.modalities})",
                                   source=str(self.survey.path), field=f"{missing[0]}_flux")
        bad_labels = [c for c in labels if c not in self.survey.label_columns]
        if bad_labels:
            raise InvalidDataError(f"no such label column(s) {bad_labels}; available: "
                                   f"{self.survey.label_columns}", source=str(self.survey.path),
                                   field=bad_labels[0])
        self.modalities = tuple(modalities)
        self.label_names = tuple(labels)
        self.indices = np.arange(len(self.survey)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.spectrum_length = self._max_trailing("spectrum_flux") if "spectrum" in self.modalities else 0

    def _max_trailing(self, column: str) -> int:
        length = 0
        for tile in self.survey.tiles:
            with h5py.File(tile, "r") as f:
                if column in f:
                    length = max(length, f[column].shape[1])
        return length

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        index = int(self.indices[i])
        survey = self.survey
        source = str(survey.tiles[survey._file_index[index]])
        oid = str(survey.object_ids[index])
        ctx = dict(source=source, object_id=oid)
        sample: dict = {"index": index, "object_id": oid}
        tile = int(survey._file_index[index])
        for modality in self.modalities:
            if not self._tile_has(tile, modality):  # a tile where no object has it: the fill of "absent"
                sample.update(self._absent(modality))
            else:
                sample.update(getattr(self, f"_{modality}")(index, ctx))
        if self.label_names:
            raw = survey.read_columns(index, [c for c in self.label_names
                                              if c in survey._tile_columns[survey._file_index[index]]])
            for name in self.label_names:
                value = raw.get(name, np.nan)
                try:
                    sample[name] = np.float32(value)
                except (TypeError, ValueError):
                    raise InvalidDataError(f"label {value!r} is not numeric; use it as a class through "
                                           f"MMUSurvey.labels()", field=name, **ctx) from None
        return self.transform(sample) if self.transform is not None else sample


    def _tile_has(self, tile: int, modality: str) -> bool:
        if modality == "photometry":
            return self.survey.has_photometry(tile)
        return ("image_array" if modality == "image" else "spectrum_flux") in self.survey._tile_columns[tile]

    def _absent(self, modality: str) -> dict:
        """A sample's arrays for an object of a tile without ``modality`` (mixed surveys): the writer's fill
        for a missing observation (zeros, ivar 0, mask False), shaped like the tiles that have it, so such
        objects batch with the others and a training stage can tell them apart (no valid value)."""
        if modality == "spectrum":
            n = self.spectrum_length
            return dict(spectrum_flux=np.zeros(n, np.float32), spectrum_ivar=np.zeros(n, np.float32),
                        spectrum_lambda=np.full(n, -1.0, np.float32), spectrum_mask=np.zeros(n, bool),
                        spectrum_lsf_sigma=np.zeros(n, np.float32))
        tile = next(t for t in range(len(self.survey.tiles)) if self._tile_has(t, modality))
        sample = getattr(self, f"_{modality}")(int(np.flatnonzero(self.survey._file_index == tile)[0]),
                                               {"source": str(self.survey.tiles[tile])})
        if modality == "image":
            return dict(image=np.zeros_like(sample["image"]), image_ivar=np.ones_like(sample["image_ivar"]),
                        image_mask=np.zeros_like(sample["image_mask"]), image_has_ivar=False,
                        psf_fwhm=np.full_like(sample["psf_fwhm"], np.nan), pixel_scale=sample["pixel_scale"])
        return dict(photometry_flux=np.zeros_like(sample["photometry_flux"]),
                    photometry_ivar=np.zeros_like(sample["photometry_ivar"]))

    def _image(self, index: int, ctx: dict) -> dict:
        raw = self.survey.read_columns(index, ["image_array", "image_ivar", "image_mask", "image_psf_fwhm",
                                               "image_scale"])
        flux = raw["image_array"].astype(np.float32)
        ivar = image_ivar_from_stored(raw["image_ivar"])
        has_ivar = not np.all(np.isnan(ivar))
        if not has_ivar:
            ivar = np.ones_like(flux)
        # MMU's Legacy Surveys tiles hold one (H, W) mask per object, for every band.
        mask = image_mask_per_band(raw["image_mask"], flux.shape[0])
        flux, ivar, mask, _ = mask_bad_values(flux, ivar, mask, "image", ctx)
        return dict(image=flux, image_ivar=ivar, image_mask=mask, image_has_ivar=has_ivar,
                    psf_fwhm=psf_fwhm_or_unknown(raw["image_psf_fwhm"]),
                    pixel_scale=np.float32(np.ravel(raw["image_scale"])[0]))

    def _spectrum(self, index: int, ctx: dict) -> dict:
        raw = self.survey.read_columns(index, ["spectrum_flux", "spectrum_ivar", "spectrum_lambda",
                                               "spectrum_mask", "spectrum_lsf_sigma"])
        conventions = self.survey.conventions(index)
        wave = raw["spectrum_lambda"].astype(np.float64)
        pad = wave <= 0
        good = good_spectrum_mask(raw["spectrum_mask"], conventions, **ctx) & ~pad
        flux, ivar, mask, _ = mask_bad_values(raw["spectrum_flux"].astype(np.float32),
                                        raw["spectrum_ivar"].astype(np.float32), good, "spectrum", ctx)
        lsf = np.where(pad, 0.0, lsf_sigma_angstrom(raw["spectrum_lsf_sigma"], wave, conventions))
        full = self.spectrum_length
        return dict(spectrum_flux=_pad(flux, full, 0.0), spectrum_ivar=_pad(ivar, full, 0.0),
                    spectrum_lambda=_pad(np.where(pad, -1.0, wave).astype(np.float32), full, -1.0),
                    spectrum_mask=_pad(mask, full, False),
                    spectrum_lsf_sigma=_pad(np.nan_to_num(lsf).astype(np.float32), full, 0.0))

    def _photometry(self, index: int, ctx: dict) -> dict:
        tile = int(self.survey._file_index[index])
        if "photometry_flux" in self.survey._tile_columns[tile]:
            raw = self.survey.read_columns(index, ["photometry_flux", "photometry_ivar"])
            flux, ivar = raw["photometry_flux"].astype(np.float32), raw["photometry_ivar"].astype(np.float32)
        else:  # the parent sample's catalogue fluxes (mmu_conventions.PARENT_SAMPLES)
            mapping = self.survey.conventions(index).photometry
            raw = self.survey.read_columns(index, sorted(mapping.columns() & self.survey._tile_columns[tile]))
            _, flux, ivar = photometry_from_columns(raw, mapping)
            ivar = np.ones_like(flux) if ivar is None else ivar
        flux, ivar, _, _ = mask_bad_values(flux, ivar, np.ones(flux.shape, bool), "photometry", ctx)
        return dict(photometry_flux=flux, photometry_ivar=ivar)


def _pad(array: np.ndarray, length: int, fill) -> np.ndarray:
    if len(array) == length:
        return array
    out = np.full(length, fill, dtype=array.dtype)
    out[: len(array)] = array
    return out
