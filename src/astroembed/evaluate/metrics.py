"""Science metrics for embeddings' downstream predictions (photo-z conventions of Hayat et al. 2021)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, r2_score

__all__ = ["r2_score", "accuracy_score", "redshift_residuals", "sigma_mad", "outlier_fraction",
           "median_abs_dz"]

OUTLIER_THRESHOLD = 0.15  # |dz| / (1 + z) above which a photo-z counts as an outlier (Hayat et al.)


def redshift_residuals(z_pred, z_true) -> np.ndarray:
    """dz / (1 + z_true)."""
    z_pred, z_true = np.asarray(z_pred, np.float64), np.asarray(z_true, np.float64)
    if z_pred.shape != z_true.shape:
        raise ValueError(f"z_pred shape {z_pred.shape} != z_true shape {z_true.shape}")
    return (z_pred - z_true) / (1.0 + z_true)


def sigma_mad(z_pred, z_true) -> float:
    """1.4826 x median absolute deviation of dz/(1+z) (robust scatter)."""
    r = redshift_residuals(z_pred, z_true)
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def outlier_fraction(z_pred, z_true, threshold: float = OUTLIER_THRESHOLD) -> float:
    return float(np.mean(np.abs(redshift_residuals(z_pred, z_true)) > threshold))


def median_abs_dz(z_pred, z_true) -> float:
    """Median |dz|/(1+z); for neighbour pairs, z_pred is the neighbour's redshift."""
    return float(np.median(np.abs(redshift_residuals(z_pred, z_true))))
