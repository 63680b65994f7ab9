"""Photo-z metrics against values worked out by hand (Hayat et al. 2021 conventions)."""

import numpy as np
import pytest

from astroembed.evaluate.metrics import median_abs_dz, outlier_fraction, redshift_residuals, sigma_mad

Z_TRUE = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
Z_PRED = np.array([0.1, 0.25, 0.3, 0.9, 0.48])
# By hand: dz/(1+z) = 0, 0.05/1.2, 0, 0.5/1.4, -0.02/1.5; median 0; |r - 0| sorted = 0, 0, 0.02/1.5,
# 0.05/1.2, 0.5/1.4, so MAD = median |r| = 0.02/1.5; only 0.5/1.4 = 0.357 is above 0.15.
RESIDUALS = [0.0, 0.05 / 1.2, 0.0, 0.5 / 1.4, -0.02 / 1.5]


def test_residuals_scatter_outliers_and_median_match_hand_values():
    np.testing.assert_allclose(redshift_residuals(Z_PRED, Z_TRUE), RESIDUALS, atol=1e-15)
    assert sigma_mad(Z_PRED, Z_TRUE) == pytest.approx(1.4826 * 0.02 / 1.5)
    assert median_abs_dz(Z_PRED, Z_TRUE) == pytest.approx(0.02 / 1.5)
    assert outlier_fraction(Z_PRED, Z_TRUE) == pytest.approx(0.2)
    assert outlier_fraction(Z_PRED, Z_TRUE, threshold=0.04) == pytest.approx(0.4)  # 0.05/1.2 = 0.0417 joins


def test_sigma_mad_ignores_a_constant_bias_that_median_abs_dz_reports():
    z = np.array([0.0, 0.5, 1.0])
    biased = z + 0.1 * (1 + z)  # dz/(1+z) = 0.1 for every galaxy: no scatter, all bias
    assert sigma_mad(biased, z) == pytest.approx(0.0, abs=1e-15)
    assert median_abs_dz(biased, z) == pytest.approx(0.1)


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="shape"):
        sigma_mad(Z_PRED[:3], Z_TRUE)
