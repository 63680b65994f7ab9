"""Zero-shot redshift from embeddings: k-NN regression on held-out galaxies, photo-z metrics."""

from __future__ import annotations

import numpy as np

from .metrics import median_abs_dz, outlier_fraction, r2_score, sigma_mad
from .probes import knn_regressor


def knn_redshift_report(train_x, train_z, test_x, test_z, k: int = 16) -> dict[str, float]:
    """Fit k-NN (cosine) on the training embeddings' redshifts; score on the held-out ones."""
    train_z, test_z = np.asarray(train_z, np.float64), np.asarray(test_z, np.float64)
    prediction = knn_regressor(k).fit(train_x, train_z).predict(test_x)
    return {"r2": float(r2_score(test_z, prediction)), "sigma_mad": sigma_mad(prediction, test_z),
            "outlier_fraction": outlier_fraction(prediction, test_z),
            "median_abs_dz": median_abs_dz(prediction, test_z), "k": k, "n_train": len(train_z),
            "n_test": len(test_z)}
