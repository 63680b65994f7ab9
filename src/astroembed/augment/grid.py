"""A PNG of augmented views, to check by eye that the augmentations look like real observations.

Behind ``astroembed augment --data PATH --show OUT.png``: one row per galaxy, the original (with the
crop window outlined, as in Stein et al. 2021's figures) followed by ``n_views`` random views, all
drawn with :func:`astroembed.preprocess.image.render_rgb` (the Legacy Surveys viewer colours for
g, r, z).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from astroembed.augment.image import ImageAugmenter
from astroembed.preprocess.image import PreprocessConfig, render_rgb

__all__ = ["draw_augmentation_grid"]


def draw_augmentation_grid(flux: np.ndarray, bands: Sequence[str], out_png: str | Path,
                           augmenter: ImageAugmenter, n_views: int = 6, ivar: np.ndarray | None = None,
                           psf_fwhm=None, pixel_scale: float = 0.262, seed: int = 0,
                           display: PreprocessConfig | None = None, panel_inches: float = 1.6) -> Path:
    """Write a grid PNG: a row per galaxy, original + n_views augmented views. Returns the path.

    flux: (N, B, H, W) raw flux (or (N, H, W, 3) uint8 RGB). ivar, psf_fwhm, pixel_scale: as for
    :class:`ImageAugmenter`. display: scales for the colour rendering; default: the viewer's g, r, z
    scales when the bands are g, r, z, else fitted on ``flux``. seed makes the views reproducible.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    flux_t = torch.as_tensor(np.ascontiguousarray(flux))
    is_rgb = flux_t.dtype == torch.uint8
    bands = tuple(bands) if bands is not None else ("R", "G", "B")
    if display is None and not is_rgb and bands != ("R", "G", "B"):
        short = {str(b).split("_")[-1].split("-")[-1] for b in bands}
        display = PreprocessConfig() if {"g", "r", "z"} <= short and set(bands) <= {"g", "r", "z"} \
            else PreprocessConfig.fit(flux_t.float(), bands)
    ivar_t = None if ivar is None else torch.as_tensor(np.ascontiguousarray(ivar))

    generator = torch.Generator().manual_seed(seed)
    views = [augmenter(flux_t, bands, ivar=ivar_t, psf_fwhm=psf_fwhm, pixel_scale=pixel_scale,
                       generator=generator) for _ in range(n_views)]
    if is_rgb:  # the augmenter hands back float 0-255 (N, 3, h, w)
        originals = render_rgb(flux_t, ("R", "G", "B"))
        views_rgb = [render_rgb(v.clamp(0, 255), ("R", "G", "B")) for v in views]
    else:
        originals = render_rgb(flux_t.float(), bands, display)
        views_rgb = [render_rgb(v, bands, display) for v in views]

    n, h, w = originals.shape[:3]
    crop = augmenter.config.crop_size
    fig, axes = plt.subplots(n, n_views + 1, figsize=(panel_inches * (n_views + 1), panel_inches * n),
                             squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(originals[i], origin="lower", interpolation="nearest")
        axes[i, 0].add_patch(Rectangle(((w - crop) / 2 - 0.5, (h - crop) / 2 - 0.5), crop, crop,
                                       fill=False, edgecolor="white", linewidth=0.8))
        for j, view in enumerate(views_rgb):
            axes[i, j + 1].imshow(view[i], origin="lower", interpolation="nearest")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("original", fontsize=8)
    for j in range(n_views):
        axes[0, j + 1].set_title(f"view {j + 1}", fontsize=8)
    fig.subplots_adjust(wspace=0.03, hspace=0.03, left=0.01, right=0.99, bottom=0.01, top=0.93)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
