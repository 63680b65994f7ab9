"""Row-wise L2 normalisation, written once: on unit vectors Euclidean distance ranks neighbours by cosine
similarity (|a - b|^2 = 2 - 2 cos), which is what contrastive training optimises."""

from __future__ import annotations

import numpy as np

__all__ = ["unit_rows"]

# Rows shorter than this are divided by it instead of their norm: a zero vector stays zero, not NaN.
MIN_NORM = 1e-12


def unit_rows(X) -> np.ndarray:
    """Each row of ``X`` divided by its L2 norm (float64; rows of norm below ``MIN_NORM`` are not blown up).

    Parameters
    ----------
    X : array_like, shape (N, D)

    Returns
    -------
    ndarray, shape (N, D)
    """
    X = np.asarray(X, np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True).clip(MIN_NORM)
