"""Dn4000 and line fluxes on hand-computed examples."""

import numpy as np
import pytest

from astroembed.evaluate.spectral_features import dn4000, line_flux

GRID = np.arange(3600.0, 9000.0, 1.0)


def test_dn4000_of_a_flat_f_lambda_is_the_ratio_of_mean_lambda_squared():
    # F_lambda = 1 at z = 0: F_nu ~ lambda^2, and the mean of lambda^2 over 100 consecutive integers
    # a..a+99 is (a + 49.5)^2 + (100^2 - 1) / 12.
    expected = ((4049.5 ** 2 + 9999 / 12) / (3899.5 ** 2 + 9999 / 12))
    assert dn4000(GRID, np.ones(GRID.size), 0.0)[0] == pytest.approx(expected, rel=1e-12)


def test_dn4000_sees_a_break_of_two_in_f_nu_at_any_redshift_and_normalisation():
    z = np.array([0.05, 0.3])
    rest = GRID[None] / (1 + z[:, None])
    f_lambda = np.where(rest < 4000, 1.0, 2.0) / GRID[None] ** 2  # F_nu: 1 below the break, 2 above
    assert dn4000(GRID, 7.0 * f_lambda, z) == pytest.approx([2.0, 2.0], rel=1e-12)


def test_dn4000_is_nan_when_a_band_is_mostly_masked_or_off_the_grid():
    valid = np.ones(GRID.size, bool)
    valid[(GRID >= 3850) & (GRID < 3920)] = False  # 70 of the blue band's 100 pixels
    assert np.isnan(dn4000(GRID, np.ones(GRID.size), 0.0, valid)[0])
    assert np.isnan(dn4000(GRID, np.ones(GRID.size), 1.5)[0])  # 4100 x 2.5 A is beyond the grid


def test_line_flux_of_a_gaussian_on_a_sloped_continuum():
    # Amplitude 5, sigma 2 A (observed frame): integral 5 x 2 x sqrt(2 pi) = 25.066; the linear continuum
    # is removed exactly by a straight line through the sideband means.
    z = 0.05
    centre = 6564.6 * (1 + z)
    flux = 2.0 + 0.001 * (GRID - 6500.0) + 5.0 * np.exp(-0.5 * ((GRID - centre) / 2.0) ** 2)
    assert line_flux(GRID, flux, z, "halpha")[0] == pytest.approx(5 * 2 * np.sqrt(2 * np.pi), abs=0.02)
    assert line_flux(GRID, 2.0 + 0.001 * (GRID - 6500.0), z, "halpha")[0] == pytest.approx(0.0, abs=1e-9)


def test_oii_line_flux_counts_both_lines_of_the_doublet_and_scales_with_the_spectrum():
    z = 0.1
    flux = np.ones(GRID.size)
    for rest, amplitude in ((3727.1, 3.0), (3729.9, 4.0)):
        flux += amplitude * np.exp(-0.5 * ((GRID - rest * (1 + z)) / 1.5) ** 2)
    expected = (3.0 + 4.0) * 1.5 * np.sqrt(2 * np.pi)
    both = line_flux(GRID, np.stack([flux, 10 * flux]), [z, z], "oii")
    assert both == pytest.approx([expected, 10 * expected], rel=1e-3)


def test_line_flux_is_nan_off_the_grid_and_the_inputs_are_checked():
    assert np.isnan(line_flux(GRID, np.ones(GRID.size), 0.5, "halpha")[0])  # 6564 x 1.5 > 9000
    with pytest.raises(ValueError, match="wavelength"):
        line_flux(GRID[:-1], np.ones(GRID.size), 0.1, "halpha")
