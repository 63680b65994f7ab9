"""Spectral features measured on spectra on a common observed-frame grid: the 4000 A break and line fluxes.

Both take rows of flux on one wavelength grid (Angstrom, observed frame, vacuum), a validity mask and
each galaxy's redshift, and return NaN where the spectrum does not cover the feature (fewer than half
of a band's pixels valid), so predicted and observed spectra are measured by the same rule.

- **Dn4000** (Balogh et al. 1999): the ratio of the mean F_nu in 4000-4100 A to that in 3850-3950 A
  (rest frame); F_nu is proportional to F_lambda * lambda^2, and the ratio does not depend on the
  spectrum's normalisation.
- **Line flux**: the integral of (flux - continuum) over a rest-frame window around the line, in flux
  unit x Angstrom (observed frame), the continuum a straight line through the mean flux of two
  sidebands. The windows avoid the [N II] 6550/6585 lines beside H-alpha and take the [O II]
  3727/3730 doublet as one line. A simple window measurement, not a profile fit: it is applied the same
  way to every spectrum it compares.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["dn4000", "line_flux", "renormalise", "LINES", "Line", "DN4000_BLUE", "DN4000_RED"]

DN4000_BLUE = (3850.0, 3950.0)
DN4000_RED = (4000.0, 4100.0)


@dataclass(frozen=True)
class Line:
    """A line's rest-frame window and continuum sidebands (Angstrom, vacuum)."""

    window: tuple[float, float]
    blue: tuple[float, float]
    red: tuple[float, float]


LINES = {
    "halpha": Line(window=(6554.0, 6575.0), blue=(6480.0, 6530.0), red=(6600.0, 6650.0)),
    "oii": Line(window=(3716.0, 3740.0), blue=(3680.0, 3710.0), red=(3745.0, 3775.0)),
}


def _inputs(wavelength, flux, valid, redshift):
    flux = np.atleast_2d(np.asarray(flux, np.float64))
    wave = np.asarray(wavelength, np.float64)
    if wave.ndim != 1 or wave.shape[0] != flux.shape[1]:
        raise ValueError(f"wavelength {wave.shape} does not fit flux {flux.shape}: give the (L,) grid")
    valid = np.ones(flux.shape, bool) if valid is None else np.atleast_2d(np.asarray(valid, bool))
    z = np.atleast_1d(np.asarray(redshift, np.float64))
    if valid.shape != flux.shape or z.shape != (flux.shape[0],):
        raise ValueError(f"valid {valid.shape} and redshift {z.shape} must match flux {flux.shape}")
    rest = wave[None, :] / (1.0 + z[:, None])
    return wave, flux, valid & np.isfinite(flux), rest


def _band_mean(values, valid, rest, band) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` over each row's valid pixels inside the rest-frame band; NaN when fewer than
    half of the band's pixels are valid (or none lie in it). Also returns the band's mean rest wavelength."""
    inside = (rest >= band[0]) & (rest < band[1])
    good = inside & valid
    n_in, n_good = inside.sum(1), good.sum(1)
    ok = (n_in > 0) & (n_good >= 0.5 * n_in) & (n_good > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, np.where(good, values, 0.0).sum(1) / n_good, np.nan)
        centre = np.where(ok, np.where(good, rest, 0.0).sum(1) / n_good, np.nan)
    return mean, centre


def dn4000(wavelength, flux, redshift, valid=None) -> np.ndarray:
    """The narrow 4000 A break (Balogh et al. 1999) of each row: <F_nu>(4000-4100) / <F_nu>(3850-3950).

    Parameters
    ----------
    wavelength
        (L,) observed-frame grid, Angstrom.
    flux
        (N, L) or (L,) flux density per unit wavelength (any unit and normalisation).
    redshift
        (N,) or scalar.
    valid
        like flux, True where a pixel may be used (default: all finite pixels).

    Returns
    -------
    (N,) float64; NaN where either band is less than half covered or its mean F_nu is not positive.
    """
    wave, f, ok, rest = _inputs(wavelength, flux, valid, redshift)
    fnu = f * wave[None, :] ** 2
    blue, _ = _band_mean(fnu, ok, rest, DN4000_BLUE)
    red, _ = _band_mean(fnu, ok, rest, DN4000_RED)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(blue > 0, red / blue, np.nan)


def line_flux(wavelength, flux, redshift, line: str | Line, valid=None) -> np.ndarray:
    """Continuum-subtracted flux of a line in each row: sum over the window of (flux - continuum) * pixel width.

    Parameters
    ----------
    wavelength
        (L,) observed-frame grid, Angstrom (pixel widths from its spacing).
    flux
        (N, L) or (L,).
    redshift
        (N,) or scalar.
    line
        a name of :data:`LINES` ("halpha", "oii") or a :class:`Line`.
    valid
        like flux, True where a pixel may be used.

    Returns
    -------
    (N,) float64 in flux unit x Angstrom; NaN where the window or a sideband is less than half
    covered. Invalid pixels inside the window count at the continuum (they add nothing).
    """
    spec = LINES[line] if isinstance(line, str) else line
    wave, f, ok, rest = _inputs(wavelength, flux, valid, redshift)
    width = np.gradient(wave)[None, :]
    blue, x_blue = _band_mean(f, ok, rest, spec.blue)
    red, x_red = _band_mean(f, ok, rest, spec.red)
    slope = (red - blue) / (x_red - x_blue)
    continuum = blue[:, None] + slope[:, None] * (rest - x_blue[:, None])
    inside = (rest >= spec.window[0]) & (rest < spec.window[1])
    n_in, n_good = inside.sum(1), (inside & ok).sum(1)
    excess = np.where(inside & ok, (f - continuum) * width, 0.0).sum(1)
    covered = (n_in > 0) & (n_good >= 0.5 * n_in)
    return np.where(covered & np.isfinite(continuum).all(1), excess, np.nan)


def renormalise(flux: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row divided by its median |flux| over ``valid`` pixels; returns (normalised rows, scales)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row without valid pixels: scale 1
        scale = np.nanmedian(np.where(valid, np.abs(flux), np.nan), axis=1)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return flux / scale[:, None], scale
