"""Which Dataset and preprocessing a pretraining run uses, chosen from what the data path holds."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..augment.extinction import extinction_coefficients
from ..preprocess.image import LS_GRZ_SCALES, PreprocessConfig, standardize
from ..data.dataset import MMUDataset
from ..data.folder_dataset import ImageFolderDataset
from ..data.readers.image_folder import is_image_folder
from ..data.records import InvalidDataError

FIT_SAMPLE = 256


def image_dataset(path, preprocess: PreprocessConfig | None):
    """(dataset, bands, preprocessing, physical) for the cutouts at ``path``.

    ``physical`` says whether reddening/PSF augmentations apply: they need flux in known bands, not
    8-bit colour images.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidDataError("no such file or folder", source=str(path))
    if is_image_folder(path):
        if preprocess is None:
            sample = ImageFolderDataset(path)[0]["image"]
            preprocess = PreprocessConfig.for_rgb(int(sample.shape[-1]))
        dataset = ImageFolderDataset(path, standardize=partial(standardize, config=preprocess), cache=True)
        return dataset, ("R", "G", "B"), preprocess, False
    dataset = MMUDataset(path, modalities=("image",))
    first = dataset.survey.galaxy(0).image
    bands = first.bands
    if preprocess is None:
        if set(bands) <= set(LS_GRZ_SCALES):
            preprocess = PreprocessConfig(mode="arcsinh", crop_size=min(64, first.flux.shape[-1]))
        else:
            rng = np.random.default_rng(0)
            idx = rng.choice(len(dataset), size=min(FIT_SAMPLE, len(dataset)), replace=False)
            sample = np.stack([dataset[int(i)]["image"] for i in idx])
            preprocess = PreprocessConfig.fit(sample, bands, crop_size=min(64, first.flux.shape[-1]))
    try:
        extinction_coefficients(bands)
        physical = True
    except (KeyError, ValueError):
        physical = False
    return dataset, tuple(bands), preprocess, physical


def embedding_batches(dataset, batch_size: int, num_workers: int = 0):
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
