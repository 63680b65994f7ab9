"""Pictures for people: colour thumbnails and spectrum plots of catalogue objects, cached on disk.

Thumbnails are the Legacy Surveys viewer's colour mapping (:func:`astroembed.preprocess.image.render_rgb`)
with the band scales of the catalogue model's own preprocessing, so the picture shows what the model was
given; RGB cutouts (JPEGs) are shown as they are. Spectra are drawn with matplotlib's object API (no
pyplot state, so concurrent requests cannot draw into each other's figures); pixels with ivar = 0 or a
bad mask are left out of the line and shaded grey.

The cache lives in its own folder (by default beside the index: ``<index>.app-cache``); file names are
SHA-256 hashes of the object id, never text from a request.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from ..files import atomic_path

__all__ = ["ThumbnailCache", "thumbnail_png", "spectrum_png", "spectrum_series"]

THUMBNAIL_PIXELS = 128


def default_cache_dir(index_dir) -> Path:
    index_dir = Path(index_dir).resolve()
    return index_dir.parent / f"{index_dir.name}.app-cache"


class ThumbnailCache:
    """PNG bytes by (kind, object id), rendered once and kept as files under ``root``."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, kind: str, object_id: str) -> Path:
        digest = hashlib.sha256(str(object_id).encode("utf-8")).hexdigest()
        return self.root / kind / digest[:2] / f"{digest}.png"

    def get(self, kind: str, object_id: str, render) -> bytes:
        path = self.path(kind, object_id)
        if path.is_file():
            return path.read_bytes()
        data = render()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole or not at all: a concurrent reader sees no file or the whole file, never half of it.
        with atomic_path(path, fsync=False) as tmp:
            tmp.write_bytes(data)
        return data


def thumbnail_png(image, preprocessing=None, size: int = THUMBNAIL_PIXELS) -> bytes:
    """(bands, H, W) flux of a :class:`~astroembed.data.records.Image` -> PNG bytes of a colour composite."""
    from PIL import Image as PILImage

    from ..preprocess.image import PreprocessConfig, render_rgb

    flux = np.nan_to_num(np.asarray(image.flux, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    config = preprocessing or PreprocessConfig()
    bands = tuple(image.bands)
    if any(b not in config.band_scales for b in bands) and bands != ("R", "G", "B"):
        # A model without scales for these bands: fit display scales to this cutout's own noise.
        config = PreprocessConfig.fit(flux[None], bands)
    rgb = render_rgb(flux[None], bands, config)[0]
    picture = PILImage.fromarray((rgb * 255 + 0.5).astype(np.uint8), mode="RGB")
    if max(picture.size) != size:
        picture = picture.resize((size, size), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=True)
    return out.getvalue()


def spectrum_series(spectrum) -> dict:
    """A spectrum as JSON-ready lists; masked pixels (ivar = 0 or mask False) have flux None."""
    flux = np.asarray(spectrum.flux, np.float64)
    good = _good_pixels(spectrum)
    return {"wavelength": np.round(np.asarray(spectrum.wavelength, np.float64), 3).tolist(),
            "flux": [float(f) if g else None for f, g in zip(flux, good)],
            "n_masked": int((~good).sum()), "unit": "1e-17 erg/s/cm^2/Angstrom"}


def _good_pixels(spectrum) -> np.ndarray:
    good = np.isfinite(np.asarray(spectrum.flux, np.float64))
    if spectrum.ivar is not None:
        good &= np.asarray(spectrum.ivar) > 0
    if spectrum.mask is not None:
        good &= np.asarray(spectrum.mask, bool)
    return good


def _masked_runs(good: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of consecutive masked pixels."""
    edges = np.diff(np.concatenate([[0], (~good).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def spectrum_png(spectrum, width_px: int = 480, height_px: int = 160, label: str | None = None) -> bytes:
    """PNG of a spectrum; masked regions shaded (so a gap is visibly a mask, not zero flux)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    wave = np.asarray(spectrum.wavelength, np.float64)
    flux = np.asarray(spectrum.flux, np.float64)
    good = _good_pixels(spectrum)
    fig = Figure(figsize=(width_px / 100, height_px / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.1, 0.25, 0.88, 0.7))
    ax.plot(wave, np.where(good, flux, np.nan), lw=0.6, color="#1f3b73")
    for start, stop in _masked_runs(good):
        ax.axvspan(wave[start], wave[min(stop, len(wave) - 1)], color="0.8", lw=0, zorder=0)
    if good.any():
        lo, hi = np.percentile(flux[good], [0.5, 99.5])
        pad = 0.1 * (hi - lo) or 1.0
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(wave[0], wave[-1])
    ax.set_xlabel("wavelength (Å)", fontsize=7)
    ax.set_ylabel("flux", fontsize=7)
    ax.tick_params(labelsize=6)
    if label:
        ax.set_title(label, fontsize=7, loc="left")
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
