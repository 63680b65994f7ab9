"""The raw inputs of an MMU survey's objects, read in blocks straight from the tiles, or of a folder of
JPEG/PNG colour cutouts: pixels and spectra for the baselines that see the data itself (PCA of pixels or
flux, and the networks trained from scratch).

A tile's objects are contiguous and in row order in :class:`~astroembed.data.mmu.MMUSurvey`, so a tile is
read with one slice per column (per-object reads are far slower on thousands of objects).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.mmu_conventions import good_spectrum_mask
from ..data.records import InvalidDataError
from ..data.validate import decode_strings
from ..preprocess.image import PreprocessConfig, standardize

__all__ = ["column_blocks", "gather", "survey_images", "survey_spectra", "survey_pixel_features", "folder_images"]


def column_blocks(survey, column: str, bin_factor: int = 1, dtype=np.float32):
    """Yield (tile index, survey rows, values) of ``column`` tile by tile (a survey's pixels do not fit in
    memory at once); images are averaged over ``bin_factor`` x ``bin_factor`` pixels when asked."""
    for i, tile in enumerate(survey.tiles):
        if column not in survey._tile_columns[i]:
            raise InvalidDataError(f"no {column} column: the {column.split('_')[0]} baseline needs it",
                                   source=str(tile), field=column)
        rows = np.flatnonzero(survey._file_index == i)
        values = np.asarray(survey._file(i)[column][:], dtype)
        if bin_factor > 1:
            n, c, h, w = values.shape
            h2, w2 = h // bin_factor, w // bin_factor
            values = values[:, :, :h2 * bin_factor, :w2 * bin_factor].reshape(
                n, c, h2, bin_factor, w2, bin_factor).mean((3, 5))
        yield i, rows, values


def gather(survey, column: str, bin_factor: int = 1) -> np.ndarray:
    """``column`` of every object of the survey, flattened per object (float32, survey order)."""
    out = None
    for _, rows, values in column_blocks(survey, column, bin_factor):
        flat = values.reshape(len(values), -1)
        out = np.zeros((len(survey), flat.shape[1]), np.float32) if out is None else out
        out[rows] = flat
    return out


def _select(survey, column: str, wanted: np.ndarray, dtype=np.float32, fill=0):
    """Values of ``column`` for survey rows ``wanted`` (in that order), and the tile index of each row. Tiles
    pad spectra to their own longest row: shorter tiles are padded with ``fill`` to the longest."""
    blocks, tile_of = [], np.empty(len(wanted), np.int64)
    position = {int(r): k for k, r in enumerate(wanted)}
    for i, rows, values in column_blocks(survey, column, dtype=dtype):
        here = [(position[int(r)], j) for j, r in enumerate(rows) if int(r) in position]
        if here:
            dest, src = map(np.array, zip(*here))
            blocks.append((dest, values[src]))
            tile_of[dest] = i
    width = max(v.shape[-1] for _, v in blocks)
    out = np.full((len(wanted), *blocks[0][1].shape[1:-1], width), fill, dtype)
    for dest, values in blocks:
        out[dest, ..., :values.shape[-1]] = values
    return out, tile_of


def survey_images(survey, rows: np.ndarray, crop: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Cutouts (N, bands, H, W) of survey rows ``rows`` (centre-cropped to ``crop`` pixels to save memory)
    and the band names of their planes."""
    if "image_array" not in survey.columns:
        raise InvalidDataError("has no images (image_array): the image baseline needs them", source=str(survey.path),
                               field="image_array")
    images, tile_of = _select(survey, "image_array", np.asarray(rows))
    bands = decode_strings(survey._file(int(tile_of[0]))["image_band"][0]).astype(str).tolist()
    if crop is not None and crop < images.shape[-1]:
        start = (images.shape[-1] - crop) // 2
        images = np.ascontiguousarray(images[..., start:start + crop, start:start + crop])
    return torch.from_numpy(np.nan_to_num(images)), [b for b in bands if b]


def survey_spectra(survey, rows: np.ndarray, config) -> dict[str, torch.Tensor]:
    """Spectra of survey rows ``rows`` on the grid of a ``SpectrumPreprocessConfig``: the normalised batch
    (``flux``, ``ivar``, ``valid``) that the spectrum models read, masks in each tile's own convention."""
    from ..preprocess.stored import prepare_stored_spectra

    rows = np.asarray(rows)
    flux, tile_of = _select(survey, "spectrum_flux", rows)
    wave, _ = _select(survey, "spectrum_lambda", rows, np.float64, fill=-1.0)
    ivar = (_select(survey, "spectrum_ivar", rows)[0] if "spectrum_ivar" in survey.columns
            else np.ones_like(flux))
    good = np.ones(flux.shape, bool)
    if "spectrum_mask" in survey.columns:
        stored, _ = _select(survey, "spectrum_mask", rows, bool)
        for i in np.unique(tile_of):
            part = tile_of == i
            good[part] = good_spectrum_mask(stored[part], survey.tile_conventions[i], source=str(survey.tiles[i]))
    empty = np.flatnonzero((wave <= 0).all(1))
    if empty.size:
        raise InvalidDataError(f"has no spectrum ({empty.size} of the labelled objects lack one): the spectrum "
                               "baseline needs one for every labelled object", source=str(survey.path),
                               object_id=str(survey.object_ids[rows[empty[0]]]), field="spectrum_flux")
    bad = ~np.isfinite(flux) | ~np.isfinite(ivar) | (ivar < 0)
    flux, ivar = np.where(bad, 0, flux), np.where(bad, 0, ivar)
    return prepare_stored_spectra(flux, ivar, wave, good & ~bad & (wave > 0), config)


def survey_pixel_features(survey, rows: np.ndarray) -> np.ndarray:
    """:func:`~astroembed.evaluate.pixel_quality.pixel_features` of survey rows ``rows`` (in that order), read
    tile by tile. A pixel counts as masked where ``image_mask`` is False or ``image_ivar`` is <= 0; a cutout
    stored without ivar (all NaN, "unknown") gets its noise from its own sky ring."""
    from .pixel_quality import FEATURES, pixel_features

    if "image_array" not in survey.columns:
        raise InvalidDataError("has no images (image_array): pixel-quality scores need them", source=str(survey.path),
                               field="image_array")
    rows = np.asarray(rows)
    position = {int(r): k for k, r in enumerate(rows)}
    out = np.full((len(rows), len(FEATURES)), np.nan)
    for i, tile_rows, flux in column_blocks(survey, "image_array"):
        here = [(position[int(r)], j) for j, r in enumerate(tile_rows) if int(r) in position]
        if not here:
            continue
        dest, src = map(np.array, zip(*here))
        f = survey._file(i)
        ivar = np.asarray(f["image_ivar"][:], np.float32)[src] if "image_ivar" in f else np.ones_like(flux[src])
        unknown = np.isnan(ivar).all(axis=(1, 2, 3))
        ivar[unknown] = 1.0  # no ivar stored: uniform weights, the ring sets the noise
        if "image_mask" in f:
            ivar = np.where(np.asarray(f["image_mask"][:], bool)[src], ivar, 0.0)
        out[dest] = pixel_features(flux[src], ivar)
    missing = np.flatnonzero(np.isnan(out).any(axis=1))
    if missing.size:
        raise InvalidDataError(f"{missing.size} requested rows are not in the survey's tiles", source=str(survey.path),
                               field="image_array")
    return out


def folder_images(folder, object_ids) -> tuple[torch.Tensor, list[str], PreprocessConfig]:
    """Cutouts of a folder of colour images, ``(images (N, 3, S, S) on the 0-255 scale, ["R", "G", "B"],
    preprocessing)``, in the order of ``object_ids`` (file stems).

    Each image is standardised as image pretraining on a folder standardises it
    (:meth:`~astroembed.preprocess.image.PreprocessConfig.for_rgb` of the first image's side: the central
    half, resampled) and kept as 8-bit values, so a network trained from scratch sees the frame a
    pretrained model saw; the returned preprocessing (RGB scaling and crop) is what it applies next.

    Parameters
    ----------
    folder : ImageFolderDataset
        The folder (as :func:`~astroembed.evaluate.inputs.raw_data` opens it).
    object_ids : sequence of str
        Which images, in which order.
    """
    from functools import partial

    from ..data.folder_dataset import ImageFolderDataset
    from ..data.readers.image_folder import load_rgb

    config = PreprocessConfig.for_rgb(load_rgb(folder.files[0]).shape[-1])
    standardised = ImageFolderDataset(folder.root, standardize=partial(standardize, config=config))
    index = {str(o): i for i, o in enumerate(standardised.object_ids)}
    missing = [str(o) for o in object_ids if str(o) not in index]
    if missing:
        raise InvalidDataError(f"{len(missing)} labelled object(s) have no image in the folder",
                               source=str(folder.root), object_id=missing[0], field="object_id")
    images = torch.stack([standardised[index[str(o)]]["image"] for o in object_ids])
    return images, ["R", "G", "B"], config
