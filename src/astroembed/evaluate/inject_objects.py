"""Objects of another kind or another instrument injected in place of a galaxy, to test that an anomaly
ranking finds what a survey's own pipeline mislabels: a star or a quasar (a point source with a stellar or a
quasar spectral shape) and the same galaxy seen with another camera's pixel scale and PSF.

Each function takes one cutout (bands, H, W) in the survey's flux units and a numpy Generator, like the
artefacts of :mod:`astroembed.evaluate.inject`, and keeps the cutout's own noise level and total flux, so the
ranking must find the object by its shape or colour, not by its brightness.
"""

from __future__ import annotations

import numpy as np

from .inject import noise_sigma

__all__ = ["point_source", "star", "quasar", "other_instrument", "OTHER_OBJECTS", "EFFECTIVE_WAVELENGTHS"]

# Effective wavelengths (Angstrom) of the g, r, z bands (DECam, the built-in survey's), blue to red.
EFFECTIVE_WAVELENGTHS = (4800.0, 6400.0, 9200.0)
# hc / k in Angstrom * K, for the Planck function's exponent.
HC_OVER_K = 1.438777e8


def _gaussian_psf(shape, fwhm: float, centre) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    sigma = fwhm / 2.3548
    psf = np.exp(-0.5 * ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / sigma ** 2)
    return psf / psf.sum()


def point_source(image, rng, sed: np.ndarray, fwhm: float = 5.0) -> np.ndarray:
    """The galaxy replaced by an unresolved source with band fluxes in the ratios ``sed`` (one per band),
    total flux equal to the cutout's, Gaussian PSF of ``fwhm`` pixels (1.3" seeing at 0.262"/px), on
    fresh sky noise at the cutout's level."""
    image = np.asarray(image, np.float64)
    bands, h, w = image.shape
    sigma = noise_sigma(image)
    centre = ((h - 1) / 2 + rng.uniform(-0.5, 0.5), (w - 1) / 2 + rng.uniform(-0.5, 0.5))
    total = max(float(np.clip(image, 0, None).sum()), 1e-12)
    fluxes = total * np.asarray(sed, np.float64) / np.sum(sed)
    out = fluxes[:, None, None] * _gaussian_psf((h, w), fwhm, centre)[None]
    return (out + sigma[:, None, None] * rng.standard_normal(image.shape)).astype(np.asarray(image).dtype)


def _band_wavelengths(n_bands: int, wavelengths) -> np.ndarray:
    if wavelengths is not None:
        return np.asarray(wavelengths, np.float64)
    if n_bands == len(EFFECTIVE_WAVELENGTHS):
        return np.asarray(EFFECTIVE_WAVELENGTHS)
    return np.geomspace(4000.0, 9500.0, n_bands)  # unknown bands: spread over the optical, blue to red


def star(image, rng, temperature_range=(3500.0, 10000.0), wavelengths=None, fwhm: float = 5.0) -> np.ndarray:
    """A star: a point source whose band fluxes follow a blackbody f_nu of a random temperature (K)."""
    lam = _band_wavelengths(len(image), wavelengths)
    temperature = rng.uniform(*temperature_range)
    f_nu = lam ** -3 / np.expm1(HC_OVER_K / (lam * temperature))  # B_nu at nu = c / lam, up to a constant
    return point_source(image, rng, f_nu, fwhm)


def quasar(image, rng, slope_range=(-1.0, 0.0), wavelengths=None, fwhm: float = 5.0) -> np.ndarray:
    """A quasar: a point source with a power-law continuum f_nu ~ nu^alpha, alpha uniform in ``slope_range``
    (typical optical slopes are about -0.5): bluer than most galaxies, unresolved."""
    lam = _band_wavelengths(len(image), wavelengths)
    alpha = rng.uniform(*slope_range)
    return point_source(image, rng, (lam / lam[0]) ** -alpha, fwhm)


def other_instrument(image, rng, pixel_scale: float = 0.168, survey_pixel_scale: float = 0.262) -> np.ndarray:
    """The galaxy resampled onto the pixels of a camera with ``pixel_scale`` (arcsec/px; 0.168 is HSC's,
    0.05 HST ACS's): the centre magnified by survey_pixel_scale / pixel_scale (cubic interpolation),
    surface brightness per pixel scaled by the pixel area, then fresh noise at the cutout's level (the
    interpolation smooths the original noise). The survey's PSF is magnified with it: the cutout looks as
    the survey's view would on the finer pixels, not as that camera's sharper PSF would show it."""
    from scipy.ndimage import zoom

    image = np.asarray(image, np.float64)
    bands, h, w = image.shape
    factor = survey_pixel_scale / pixel_scale
    sigma = noise_sigma(image)
    crop_h, crop_w = max(2, int(round(h / factor))), max(2, int(round(w / factor)))
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    centre = image[:, top:top + crop_h, left:left + crop_w]
    # grid_mode: pixels are areas, so crop_h pixels become exactly h (not (h - 1) / (crop_h - 1) times as many)
    magnified = zoom(centre, (1, h / crop_h, w / crop_w), order=3, grid_mode=True, mode="nearest") / factor ** 2
    out = magnified[:, :h, :w] + sigma[:, None, None] * rng.standard_normal((bands, h, w))
    return out.astype(np.asarray(image).dtype)


def _hst(image, rng):
    return other_instrument(image, rng, pixel_scale=0.05)


OTHER_OBJECTS = {"star": star, "quasar": quasar, "other_instrument_hsc": other_instrument,
                 "other_instrument_hst": _hst}
