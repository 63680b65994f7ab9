"""Built-in baselines read from an MMU survey: PCA of the raw pixels, PCA of the spectra's flux, and the
catalogue photometry; and PCA of the pixels of a folder of JPEG/PNG colour cutouts. Each is a FeatureSet
the evaluation scores like any embedding; the PCAs are fitted by the runner on the training objects only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from .inputs import FeatureSet
from .raw_inputs import gather

__all__ = ["pca_pixels", "pca_flux", "photometry", "asinh_magnitudes"]

# Softening of the asinh magnitudes, in nanomaggies: about SDSS's r-band value (Lupton et al. 1999).
SOFTENING_NMGY = 0.1


def _survey(path):
    from ..data.mmu import MMUSurvey

    return MMUSurvey(path)


def _folder_pixels(path, n_components: int, bin_factor: int) -> FeatureSet:
    """Colour cutouts in the frame the networks see (standardised, centre crop), binned, on a 0-1 scale: 8-bit
    display values are already compressed, so no stretch."""
    import torch

    from .inputs import raw_data
    from .raw_inputs import folder_images

    folder = raw_data(path)["image_folder"]
    images, _, config = folder_images(folder, folder.object_ids)
    side = config.crop_size or images.shape[-1]
    start = (images.shape[-1] - side) // 2
    images = torch.nn.functional.avg_pool2d(images[..., start:start + side, start:start + side] / 255.0, bin_factor)
    X = images.reshape(len(images), -1).numpy().astype(np.float64)
    return FeatureSet("pca_pixels", folder.object_ids.astype(str), X, str(path),
                      transform=PCA(n_components=min(n_components, X.shape[1]), random_state=0))


def pca_pixels(survey_path, n_components: int = 64, bin_factor: int = 4) -> FeatureSet:
    """Images binned ``bin_factor`` x ``bin_factor``, asinh-stretched (the dynamic range of galaxies), and
    reduced by PCA: the "no learning beyond linear" baseline of an image encoder. ``survey_path`` may also
    be a folder of JPEG/PNG colour cutouts (standardised as for the networks, not stretched)."""
    from ..data.readers.image_folder import is_image_folder

    if is_image_folder(Path(survey_path)):
        return _folder_pixels(survey_path, n_components, bin_factor)
    survey = _survey(survey_path)
    X = np.arcsinh(np.nan_to_num(gather(survey, "image_array", bin_factor)) / 0.1)
    return FeatureSet("pca_pixels", survey.object_ids.astype(str), X, str(survey_path), survey.ra, survey.dec,
                      transform=PCA(n_components=min(n_components, X.shape[1]), random_state=0))


def pca_flux(survey_path, n_components: int = 64) -> FeatureSet:
    """Spectra divided by their median |flux| (shape, not brightness), reduced by PCA."""
    survey = _survey(survey_path)
    X = np.nan_to_num(gather(survey, "spectrum_flux"))
    X = X / np.clip(np.median(np.abs(X), axis=1, keepdims=True), 1e-6, None)
    return FeatureSet("pca_flux", survey.object_ids.astype(str), X, str(survey_path), survey.ra, survey.dec,
                      transform=PCA(n_components=min(n_components, X.shape[1]), random_state=0))


def asinh_magnitudes(flux_nmgy: np.ndarray, softening: float = SOFTENING_NMGY) -> np.ndarray:
    """Asinh magnitudes (Lupton et al. 1999) of fluxes in nanomaggies: finite for faint and negative fluxes."""
    b = softening
    return 22.5 - 2.5 / np.log(10) * (np.arcsinh(flux_nmgy / (2 * b)) + np.log(b))


def photometry(survey_path) -> FeatureSet:
    """The catalogue's fluxes as asinh magnitudes: the photometry-only baseline (with an MLP probe)."""
    survey = _survey(survey_path)
    flux = gather(survey, "photometry_flux").astype(np.float64)
    good = np.isfinite(flux).all(1)
    return FeatureSet("photometry", survey.object_ids.astype(str)[good], asinh_magnitudes(flux[good]),
                      str(Path(survey_path)), survey.ra[good], survey.dec[good], n_dropped=int((~good).sum()))
