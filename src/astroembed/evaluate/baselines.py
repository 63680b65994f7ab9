"""Built-in baselines read from an MMU survey: PCA of the raw pixels, PCA of the spectra's flux, and the
catalogue photometry. Each is a FeatureSet the evaluation scores like any embedding; the PCAs are fitted
by the runner on the training objects only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from ..data.records import InvalidDataError
from .inputs import FeatureSet

__all__ = ["pca_pixels", "pca_flux", "photometry", "asinh_magnitudes"]

# Softening of the asinh magnitudes, in nanomaggies: about SDSS's r-band value (Lupton et al. 1999).
SOFTENING_NMGY = 0.1


def _survey(path):
    from ..data.mmu import MMUSurvey

    return MMUSurvey(path)


def _column_blocks(survey, column: str, bin_factor: int = 1):
    """Yield (rows, values) of ``column`` tile by tile (a survey's pixels do not fit in memory at once)."""
    for i, tile in enumerate(survey.tiles):
        if column not in survey._tile_columns[i]:
            raise InvalidDataError(f"no {column} column: the {column.split('_')[0]} baseline needs it",
                                   source=str(tile), field=column)
        rows = np.flatnonzero(survey._file_index == i)
        values = np.asarray(survey._file(i)[column][:], np.float32)
        if bin_factor > 1:
            n, c, h, w = values.shape
            h2, w2 = h // bin_factor, w // bin_factor
            values = values[:, :, :h2 * bin_factor, :w2 * bin_factor].reshape(
                n, c, h2, bin_factor, w2, bin_factor).mean((3, 5))
        yield rows, values  # a tile's objects are contiguous and in row order in the survey


def _gather(survey, column: str, bin_factor: int = 1) -> np.ndarray:
    out = None
    for rows, values in _column_blocks(survey, column, bin_factor):
        flat = values.reshape(len(values), -1)
        out = np.zeros((len(survey), flat.shape[1]), np.float32) if out is None else out
        out[rows] = flat
    return out


def pca_pixels(survey_path, n_components: int = 64, bin_factor: int = 4) -> FeatureSet:
    """Images binned ``bin_factor`` x ``bin_factor``, asinh-stretched (the dynamic range of galaxies), and
    reduced by PCA: the "no learning beyond linear" baseline of an image encoder."""
    survey = _survey(survey_path)
    X = np.arcsinh(np.nan_to_num(_gather(survey, "image_array", bin_factor)) / 0.1)
    return FeatureSet("pca_pixels", survey.object_ids.astype(str), X, str(survey_path), survey.ra, survey.dec,
                      transform=PCA(n_components=min(n_components, X.shape[1]), random_state=0))


def pca_flux(survey_path, n_components: int = 64) -> FeatureSet:
    """Spectra divided by their median |flux| (shape, not brightness), reduced by PCA."""
    survey = _survey(survey_path)
    X = np.nan_to_num(_gather(survey, "spectrum_flux"))
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
    flux = _gather(survey, "photometry_flux").astype(np.float64)
    good = np.isfinite(flux).all(1)
    return FeatureSet("photometry", survey.object_ids.astype(str)[good], asinh_magnitudes(flux[good]),
                      str(Path(survey_path)), survey.ra[good], survey.dec[good], n_dropped=int((~good).sum()))
