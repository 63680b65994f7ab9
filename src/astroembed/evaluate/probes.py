"""Probes on frozen embeddings: zero-shot k-NN regression and linear probes, as scikit-learn estimators.

They are thin, named configurations of scikit-learn (no reimplementation): what matters is that every
evaluation in the project uses the same ones, with standardised inputs and cosine k-NN.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

__all__ = ["knn_regressor", "linear_classifier", "linear_regressor", "pca_baseline", "split_indices"]


def knn_regressor(k: int = 16) -> KNeighborsRegressor:
    """Zero-shot k-NN regression: distance-weighted mean label of the k most cosine-similar embeddings.

    Cosine similarity is what contrastive training optimises, so vectors are L2-normalised and compared
    with Euclidean distance (monotone in cosine for unit vectors).
    """
    return make_pipeline(Normalizer(), KNeighborsRegressor(n_neighbors=k, weights="distance"))


def linear_classifier(C: float = 1.0, max_iter: int = 2000):
    """Logistic-regression probe on standardised embeddings."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))


def linear_regressor():
    """Ridge probe with the penalty chosen by efficient leave-one-out CV."""
    return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))


def pca_baseline(n_components: int = 64, seed: int = 0) -> PCA:
    """Pixels -> PCA: the 'no learning beyond linear' baseline for a probe."""
    return PCA(n_components=n_components, random_state=seed)


def split_indices(n: int, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/test split of range(n)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])
