"""Render one galaxy's Legacy-Surveys-like g, r, z cutout and DESI-like spectrum from its SED.

The physical inputs (redshift, SED, stellar mass, star-formation history) come from a real SDSS
galaxy (:mod:`astroembed.data.sed`); what is invented here is what SDSS photometry cannot tell us:
the 2-D light profile, the seeing and the noise. Every draw uses the ``numpy.random.Generator``
passed in, so a galaxy is a pure function of its inputs and that generator's seed.

Morphology model (one bulge + disk, same profile in every band):
- bulge: de Vaucouleurs (Sersic n = 4) truncated at 8 half-light radii; disk: exponential (n = 1)
  truncated at 4 half-light radii (SDSS's model-magnitude truncations, so the drawn flux is the
  model flux).
- sizes from mass-size relations with 0.15 dex scatter: disk R_e = 4.5 kpc (M / 10^10.5)^0.22,
  bulge R_e = 1.8 kpc (M / 10^10.5)^0.55 (roughly Shen et al. 2003 late and early types at z ~ 0.1),
  converted to arcsec with the Planck18 angular-diameter distance.
- bulge-to-total ratio: a logistic function rising with stellar mass and falling with the fraction of
  stars formed in the last Gyr (b1000), with scatter.
- apparent axis ratio: disks are thin (intrinsic 0.2) at a random inclination, bulges are round-ish
  (0.6-1); the galaxy's one shear mixes the two by B/T. Random position angle.

Labels: ``half_light_radius_arcsec`` is the circularised radius sqrt(a b) enclosing half the light of
the bulge + disk before PSF convolution (a shear in GalSim preserves area, so this is the
half-light radius of the unsheared profile); ``position_angle_deg`` is the major axis, counter-clockwise
from the image +x axis (columns), in [0, 180).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .records import Galaxy, Image, Photometry, Spectrum
from .sed import (DESI_WAVE, IMAGE_BANDS, SDSS_BANDS, band_maggies, desi_slice, mw_transmission,
                  sed_flux_units)

__all__ = ["GalaxyRecipe", "PIXEL_SCALE", "render_galaxy", "noise_free_fluxes",
           "composite_half_light_radius", "desi_lsf_sigma", "convolve_lsf"]

PIXEL_SCALE = 0.262  # arcsec / pixel, DECam and the Legacy Surveys coadds

# Seeing: median FWHM (arcsec) per band in the Legacy Surveys (DR9 coadds); a shared per-galaxy
# "night" factor plus a per-band one give lognormal scatter of about 0.16 in ln FWHM.
_PSF_MEDIAN = {"g": 1.5, "r": 1.3, "z": 1.2}
_PSF_BETA = 3.5  # Moffat wings, closer to a real PSF than a Gaussian
# Per-pixel sky noise (nanomaggies): medians set from the real DR9 cutout in ../shared/data
# (robust sigma 0.0018, 0.0030, 0.0089 in g, r, z, a deep DES field) made ~30% shallower for DECaLS.
_SKY_SIGMA = {"g": 0.0025, "r": 0.0038, "z": 0.0110}
# Electrons per nanomaggie of a ~3 x 90 s DECam coadd (zero points ~26.5 mag for 1 e-/s): sets the
# source Poisson term, important only in the cores of bright galaxies.
_GAIN = {"g": 13000.0, "r": 13000.0, "z": 8000.0}
_DEFECT_RATE = 0.01  # fraction of cutouts with a dead column (masked) in one band

# Spectrum: DESI arms' design resolution R (lambda / FWHM), linear within each arm.
_DESI_RESOLUTION = ((3600.0, 2000.0), (5800.0, 3200.0), (7600.0, 4100.0), (9824.0, 5100.0))
# Sky noise per 0.8 A pixel (1e-17 erg/s/cm^2/A): chosen so an r ~ 17.5 galaxy (near the SDSS main sample
# limit) has a median S/N ~ 6 per pixel (measured), like DESI BGS spectra. Total galaxy flux is used (no
# fibre-aperture loss), so the simulated spectrum and image agree in flux.
_SPEC_SKY_SIGMA = 4.0
_SPEC_SOURCE_VAR = 0.05  # variance per unit flux (the source Poisson term)
# Bright night-sky lines (vacuum A) whose residuals dominate the red noise of real spectra.
_SKY_LINES = np.array([5578.9, 5891.6, 5897.6, 6302.0, 6365.5, 6865.9, 7278.4, 7343.0, 7752.8,
                       7796.3, 7823.7, 7915.9, 7995.5, 8346.9, 8401.5, 8432.5, 8467.7, 8829.5,
                       8888.2, 8922.0, 8945.9, 8960.6, 8990.9, 9378.5, 9442.3, 9794.9])


@dataclass(frozen=True)
class GalaxyRecipe:
    """Everything a worker needs to render one catalogue row (small and picklable)."""

    row: int
    ra: float
    dec: float
    redshift: float
    coeffs: tuple[float, ...]
    r_maggies: float
    ebv: float
    log_stellar_mass: float
    metallicity: float
    b300: float
    b1000: float
    kpc_per_arcsec: float
    sdss_flux: tuple[float, ...]
    sdss_flux_ivar: tuple[float, ...]


# ------------------------------------------------------------------------------------------ morphology

@lru_cache(maxsize=4)
def _sersic_scale(n: float, trunc_over_hlr: float) -> float:
    """r0 / R_e for a Sersic profile truncated at trunc_over_hlr * R_e (R_e of the truncated profile)."""
    from scipy.optimize import brentq
    from scipy.special import gammainc

    def half(r0):  # enclosed fraction at R_e = 1 minus one half, with truncation at trunc_over_hlr
        return gammainc(2 * n, (1.0 / r0) ** (1 / n)) / gammainc(2 * n, (trunc_over_hlr / r0) ** (1 / n)) - 0.5

    return brentq(half, 1e-6, 10.0)


def _enclosed(r: float, hlr: float, n: float, trunc_over_hlr: float) -> float:
    from scipy.special import gammainc

    r0 = _sersic_scale(n, trunc_over_hlr) * hlr
    r = min(r, trunc_over_hlr * hlr)
    return gammainc(2 * n, (r / r0) ** (1 / n)) / gammainc(2 * n, (trunc_over_hlr * hlr / r0) ** (1 / n))


_BULGE_N, _BULGE_TRUNC = 4.0, 8.0
_DISK_N, _DISK_TRUNC = 1.0, 4.0


def composite_half_light_radius(bulge_fraction: float, bulge_hlr: float, disk_hlr: float) -> float:
    """Half-light radius of the truncated de Vaucouleurs bulge + exponential disk (same units as inputs).

    Solved from the two analytic enclosed-light curves (regularised incomplete gamma functions);
    GalSim's ``calculateHLR`` would draw an image to do the same, 100x slower.
    """
    from scipy.optimize import brentq

    def f(r):
        return (bulge_fraction * _enclosed(r, bulge_hlr, _BULGE_N, _BULGE_TRUNC)
                + (1 - bulge_fraction) * _enclosed(r, disk_hlr, _DISK_N, _DISK_TRUNC) - 0.5)

    hi = max(_BULGE_TRUNC * bulge_hlr, _DISK_TRUNC * disk_hlr)
    return float(brentq(f, 1e-9 * hi, hi, xtol=1e-10 * hi))


def _draw_morphology(rng: np.random.Generator, recipe: GalaxyRecipe) -> dict[str, float]:
    dlogm = recipe.log_stellar_mass - 10.5
    to_arcsec = 1.0 / recipe.kpc_per_arcsec
    disk_hlr = 4.5 * 10 ** (0.22 * dlogm + 0.15 * rng.standard_normal()) * to_arcsec
    bulge_hlr = 1.8 * 10 ** (0.55 * dlogm + 0.15 * rng.standard_normal()) * to_arcsec
    # Keep rendering cheap and the profile resolvable: the stamp is ~25" and the pixel 0.262".
    disk_hlr = float(np.clip(disk_hlr, 0.2, 20.0))
    bulge_hlr = float(np.clip(bulge_hlr, 0.1, 15.0))
    quenched = -np.log10(recipe.b1000 + 0.01) - 1.05  # > 0 for little recent star formation
    x = 1.3 * (recipe.log_stellar_mass - 10.8) + 1.8 * quenched + 0.6 * rng.standard_normal()
    bulge_fraction = float(1.0 / (1.0 + np.exp(-x)))
    cos_i = rng.uniform(0.0, 1.0)
    q_disk = np.sqrt(cos_i**2 + 0.2**2 * (1 - cos_i**2))
    q_bulge = rng.uniform(0.6, 1.0)
    axis_ratio = float(bulge_fraction * q_bulge + (1 - bulge_fraction) * q_disk)
    return {
        "bulge_fraction": bulge_fraction,
        "bulge_hlr": bulge_hlr,
        "disk_hlr": disk_hlr,
        "axis_ratio": axis_ratio,
        "position_angle_deg": float(rng.uniform(0.0, 180.0)),
        "half_light_radius_arcsec": composite_half_light_radius(bulge_fraction, bulge_hlr, disk_hlr),
    }


def _profile(morph: dict[str, float]):
    import galsim

    bulge = galsim.DeVaucouleurs(half_light_radius=morph["bulge_hlr"],
                                 trunc=_BULGE_TRUNC * morph["bulge_hlr"])
    disk = galsim.Sersic(n=_DISK_N, half_light_radius=morph["disk_hlr"],
                         trunc=_DISK_TRUNC * morph["disk_hlr"])
    galaxy = galsim.Add([bulge.withFlux(morph["bulge_fraction"]),
                         disk.withFlux(1.0 - morph["bulge_fraction"])])
    return galaxy.shear(q=morph["axis_ratio"], beta=morph["position_angle_deg"] * galsim.degrees)


# ------------------------------------------------------------------------------------------------ image

def _render_image(rng: np.random.Generator, morph: dict[str, float], band_flux: np.ndarray,
                  image_size: int) -> Image:
    import galsim

    galaxy = _profile(morph)
    night = rng.standard_normal()
    offset = rng.uniform(-0.5, 0.5, size=2)  # sub-pixel centring, as for catalogue-centred cutouts
    n_bands = len(IMAGE_BANDS)
    flux = np.empty((n_bands, image_size, image_size), dtype=np.float32)
    ivar = np.empty_like(flux)
    mask = np.ones(flux.shape, dtype=bool)
    psf_fwhm = np.empty(n_bands, dtype=np.float32)
    for i, band in enumerate(IMAGE_BANDS):
        fwhm = _PSF_MEDIAN[band] * np.exp(0.14 * night + 0.07 * rng.standard_normal())
        psf_fwhm[i] = max(fwhm, 0.6)
        psf = galsim.Moffat(beta=_PSF_BETA, fwhm=float(psf_fwhm[i]))
        model = galsim.Convolve(galaxy.withFlux(float(band_flux[i])), psf).drawImage(
            nx=image_size, ny=image_size, scale=PIXEL_SCALE, offset=tuple(offset)).array
        sky_sigma = _SKY_SIGMA[band] * np.exp(0.3 * rng.standard_normal())
        gain = _GAIN[band] * np.exp(0.3 * rng.standard_normal())
        variance = sky_sigma**2 + np.clip(model, 0.0, None) / gain
        flux[i] = model + rng.standard_normal(model.shape) * np.sqrt(variance)
        ivar[i] = 1.0 / variance
    if rng.uniform() < _DEFECT_RATE:
        band, column = rng.integers(n_bands), rng.integers(image_size)
        flux[band, :, column], ivar[band, :, column], mask[band, :, column] = 0.0, 0.0, False
    return Image(flux=flux, bands=IMAGE_BANDS, ivar=ivar, mask=mask, psf_fwhm=psf_fwhm,
                 pixel_scale=PIXEL_SCALE)


# --------------------------------------------------------------------------------------------- spectrum

def desi_lsf_sigma(wave: np.ndarray = DESI_WAVE) -> np.ndarray:
    """Gaussian line-spread sigma (A) of the DESI design resolution, about 0.75-0.85 A."""
    knots_wave, knots_r = np.array(_DESI_RESOLUTION).T
    return wave / (2.0 * np.sqrt(2.0 * np.log(2.0)) * np.interp(wave, knots_wave, knots_r))


def convolve_lsf(flux: np.ndarray, sigma: np.ndarray, step: float = 0.8) -> np.ndarray:
    """Convolve a spectrum on a uniform grid with a Gaussian whose sigma (A) varies per pixel.

    No installed library does a variable-width convolution; with sigma about one pixel a banded sum
    over +-5 sigma is exact enough and takes a few vectorised numpy operations.
    """
    half = int(np.ceil(5.0 * float(np.max(sigma)) / step))
    offsets = np.arange(-half, half + 1)
    weights = np.exp(-0.5 * (offsets[:, None] * step / sigma[None, :]) ** 2)
    weights /= weights.sum(axis=0, keepdims=True)
    padded = np.pad(flux, half, mode="edge")
    n = flux.size
    return sum(weights[k] * padded[k:k + n] for k in range(offsets.size))


@lru_cache(maxsize=1)
def _noise_shape() -> np.ndarray:
    """Relative sky noise per pixel: low throughput at the blue end, a brighter red sky continuum,
    and the residuals of bright sky lines (drawn at the nominal line-spread width)."""
    wave = DESI_WAVE
    shape = 1.0 + 2.0 * np.exp(-(wave - 3600.0) / 250.0) + 0.5 * np.clip((wave - 7000.0) / 2800.0, 0, None)
    width = 1.5 * desi_lsf_sigma(wave)
    lines = np.exp(-0.5 * ((wave[None, :] - _SKY_LINES[:, None]) / width[None, :]) ** 2).sum(axis=0)
    return shape * (1.0 + 3.0 * lines)


def _render_spectrum(rng: np.random.Generator, flux_true: np.ndarray) -> tuple[Spectrum, np.ndarray]:
    lsf = desi_lsf_sigma() * np.exp(0.05 * rng.standard_normal())  # fibre-to-fibre variation
    model = convolve_lsf(flux_true, lsf)
    sky_sigma = _SPEC_SKY_SIGMA * np.exp(0.3 * rng.standard_normal()) * _noise_shape()
    variance = sky_sigma**2 + _SPEC_SOURCE_VAR * np.clip(model, 0.0, None)
    noisy = model + rng.standard_normal(model.shape) * np.sqrt(variance)
    spectrum = Spectrum(flux=noisy.astype(np.float32), wavelength=DESI_WAVE.copy(),
                        ivar=(1.0 / variance).astype(np.float32), mask=np.ones(model.shape, dtype=bool),
                        lsf_sigma=lsf.astype(np.float32))
    return spectrum, model


# ---------------------------------------------------------------------------------------------- galaxy

def noise_free_fluxes(recipe: GalaxyRecipe) -> tuple[np.ndarray, np.ndarray]:
    """The galaxy's Milky-Way-reddened SED on :data:`SED_WAVE` (1e-17 erg/s/cm^2/A), and its DECam
    g, r, z fluxes (nanomaggies) through speclite's ``decam2014-*`` filters."""
    sed = sed_flux_units(np.asarray(recipe.coeffs), recipe.redshift, recipe.r_maggies)
    reddened = sed * mw_transmission(recipe.ebv)
    band_flux = np.array([band_maggies(f"decam2014-{b}", reddened) * 1e9 for b in IMAGE_BANDS])
    return reddened * 1e17, band_flux


def render_galaxy(recipe: GalaxyRecipe, rng: np.random.Generator, image_size: int = 96,
                  return_truth: bool = False):
    """Render one catalogue row as a :class:`Galaxy` with image, spectrum, photometry and labels.

    With ``return_truth`` also returns a dict of noise-free quantities (the LSF-convolved spectrum,
    the DECam band fluxes) that tests compare against.
    """
    sed, band_flux = noise_free_fluxes(recipe)
    morph = _draw_morphology(rng, recipe)
    image = _render_image(rng, morph, band_flux, image_size)
    spectrum, spectrum_model = _render_spectrum(rng, desi_slice(sed))
    labels = {
        "redshift": float(recipe.redshift),
        "log_stellar_mass": float(recipe.log_stellar_mass),
        "metallicity": float(recipe.metallicity),
        "sfr_300myr_fraction": float(recipe.b300),
        "sfr_1gyr_fraction": float(recipe.b1000),
        "ebv": float(recipe.ebv),
        "bulge_fraction": morph["bulge_fraction"],
        "half_light_radius_arcsec": morph["half_light_radius_arcsec"],
        "axis_ratio": morph["axis_ratio"],
        "position_angle_deg": morph["position_angle_deg"],
        "sdss_row": int(recipe.row),
    }
    galaxy = Galaxy(
        object_id=f"sdss-gst-{recipe.row:05d}", ra=float(recipe.ra), dec=float(recipe.dec),
        image=image, spectrum=spectrum,
        photometry=Photometry(bands=SDSS_BANDS, flux=np.asarray(recipe.sdss_flux, dtype=np.float32),
                              ivar=np.asarray(recipe.sdss_flux_ivar, dtype=np.float32)),
        labels=labels)
    if return_truth:
        return galaxy, {"spectrum": spectrum_model, "band_flux": band_flux, "sed": sed, **morph}
    return galaxy
