"""A lazy torch Dataset over a folder of JPEG/PNG colour cutouts (Galaxy Zoo style).

Converting such a folder to HDF5 would store 8-bit pixels as float32 (Galaxy Zoo's 424x424 cutouts:
2.2 MB each), so training reads the JPEGs directly: each sample is decoded on demand in the DataLoader
worker, then standardised (centre crop + resize) by the same function the exported model applies at
embedding time, :func:`astroembed.preprocess.image.standardize`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .readers.image_folder import load_rgb, list_images
from .records import InvalidDataError, check_unique_ids


class ImageFolderDataset(Dataset):
    """Samples ``{"index", "object_id", "image" (3, S, S) float32 0-255, "label" (int, -1 if none)}``.

    The class of an image is the name of its first-level sub-folder; ``classes`` lists them in sorted
    order and ``label`` indexes that list.
    """

    def __init__(self, path, standardize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 cache: bool = False):
        self.root = Path(path)
        if not self.root.is_dir():
            raise InvalidDataError("not a folder", source=str(self.root))
        self.files = list_images(self.root)
        if not self.files:
            raise InvalidDataError("no .jpg/.jpeg/.png images in the folder", source=str(self.root))
        check_unique_ids([p.stem for p in self.files], source=str(self.root))
        self.object_ids = np.array([p.stem for p in self.files])
        class_names = [p.relative_to(self.root).parts[0] if p.parent != self.root else "" for p in self.files]
        self.classes = sorted({c for c in class_names if c})
        lookup = {c: i for i, c in enumerate(self.classes)}
        self.labels = np.array([lookup.get(c, -1) for c in class_names], dtype=np.int64)
        self.standardize = standardize
        # With cache=True, standardised cutouts are kept as uint8 after first decoding: pretraining
        # revisits every image each epoch, and JPEG decoding + resampling would dominate the step.
        # (Each DataLoader worker keeps its own copy; at 96 px that is 27 kB per image.)
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.files)

    def _image(self, i: int) -> torch.Tensor:
        if self._cache is not None and i in self._cache:
            return self._cache[i].float()
        image = torch.from_numpy(load_rgb(self.files[i]))
        if self.standardize is not None:
            image = self.standardize(image[None])[0]
        # Back to 8-bit, as astroembed.load(...).embed does for uint8 input: identical pixels either way.
        image = image.round().clamp(0, 255).to(torch.uint8)
        if self._cache is not None:
            self._cache[i] = image
        return image.float()

    def __getitem__(self, i: int) -> dict:
        image = self._image(i)
        return {"index": i, "object_id": str(self.object_ids[i]), "image": image.float(),
                "label": int(self.labels[i])}
