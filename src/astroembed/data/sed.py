"""Spectral energy distributions of 10,000 real SDSS galaxies, from the data shipped inside ``kcorrect``.

``kcorrect`` (Blanton & Roweis 2007) ships ``data/test/gst_tests_small.fits``: 10,000 real SDSS
galaxies with positions, ugriz model fluxes, Galactic extinction and spectroscopic redshifts. We fit
each galaxy's extinction-corrected ugriz fluxes with the five kcorrect NMF templates; the fit gives
an observed-frame SED (any wavelength) and the physical properties kcorrect derives from it (stellar
mass, metallicity, recent star formation). Everything here is computed in-process and cached in
memory: nothing is downloaded and nothing is written to disk.

Units: :func:`sed_flux_units` returns f_lambda in erg/s/cm^2/A on :data:`SED_WAVE` (vacuum A);
:func:`band_maggies` gives AB maggies (1 maggie = 3631 Jy). The renderer converts to the SDSS/DESI
spectrum unit, 1e-17 erg/s/cm^2/A, and to nanomaggies.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np

__all__ = [
    "SDSS_BANDS",
    "IMAGE_BANDS",
    "DESI_WAVE",
    "SED_WAVE",
    "SF11_DECAM",
    "SdssCatalog",
    "catalog_path",
    "load_catalog",
    "observed_sed",
    "sed_flux_units",
    "band_maggies",
    "f99_extinction",
    "mw_transmission",
    "desi_slice",
]

SDSS_BANDS = ("u", "g", "r", "i", "z")
IMAGE_BANDS = ("g", "r", "z")
_DECAM_FILTERS = tuple(f"decam2014-{b}" for b in IMAGE_BANDS)
_SDSS_R_FILTER = "sdss2010-r"

# The DESI coadd grid: 3600-9824 A in 0.8 A steps (7781 pixels), vacuum wavelengths like the templates.
DESI_WAVE = np.round(3600.0 + 0.8 * np.arange(7781), 1)
# A wider grid on the same 0.8 A lattice that also covers the DECam filter tables (3330-10990 A), so
# one SED evaluation serves both the spectrum (a slice of it) and the image band fluxes.
SED_WAVE = np.round(3300.0 + 0.8 * np.arange(9626), 1)
_DESI_SLICE = slice(375, 375 + DESI_WAVE.size)

# A_b / E(B-V)_SFD for DECam g, r, z: Schlafly & Finkbeiner (2011), Table 6, R_V = 3.1. They hold for
# the 7000 K source SF11 assumed; images integrate the reddened SED through the filters instead, so
# a galaxy's image and spectrum are reddened identically (tests check the curve reproduces these).
SF11_DECAM = {"g": 3.214, "r": 2.165, "z": 1.211}
# The SDSS pipeline's EXTINCTION_r = 2.751 E(B-V)_SFD (Schlegel, Finkbeiner & Davis 1998, Table 6).
_SFD_SDSS_R = 2.751
# SF11 found the SFD map over-predicts reddening: A_b = 0.86 * F99(R_V=3.1) * E(B-V)_SFD.
_SF11_RECALIBRATION = 0.86

# kcorrect's redshift grid: 300 points to z = 0.65 (the catalogue reaches z = 0.58) initialise in ~2 s;
# its default 4000 points to z = 2 take ~20 s and gain nothing here.
_KCORRECT_ZMAX = 0.65
_KCORRECT_NZ = 300


def catalog_path():
    """Location of ``gst_tests_small.fits`` inside the installed ``kcorrect`` package."""
    return files("kcorrect") / "data" / "test" / "gst_tests_small.fits"


@dataclass(frozen=True)
class SdssCatalog:
    """The real SDSS galaxies and their kcorrect fits; arrays are indexed by FITS row.

    ``valid`` marks rows usable for simulation (positive fitted stellar mass); all 10,000 rows of
    kcorrect 5.1.9's file are valid.
    """

    ra: np.ndarray
    dec: np.ndarray
    redshift: np.ndarray
    modelflux: np.ndarray          # (n, 5) nanomaggies, SDSS ugriz, as observed (not dereddened)
    modelflux_ivar: np.ndarray     # (n, 5) 1 / nanomaggies^2
    extinction: np.ndarray         # (n, 5) magnitudes, SDSS ugriz (SFD)
    ebv: np.ndarray                # E(B-V)_SFD = EXTINCTION_r / 2.751
    coeffs: np.ndarray             # (n, 5) kcorrect template coefficients
    r_maggies: np.ndarray          # kcorrect's reconstructed (dereddened, AB) SDSS r maggies
    log_stellar_mass: np.ndarray   # log10 Msun (kcorrect mremain, Planck18 distances)
    metallicity: np.ndarray        # mass fraction in metals of the current stars
    b300: np.ndarray               # fraction of stars formed in the last 300 Myr
    b1000: np.ndarray              # fraction of stars formed in the last 1 Gyr
    kpc_per_arcsec: np.ndarray     # Planck18 angular scale at the galaxy's redshift
    valid: np.ndarray

    def __len__(self) -> int:
        return int(self.ra.size)


@lru_cache(maxsize=1)
def load_catalog() -> SdssCatalog:
    """Read the 10,000 SDSS galaxies and fit them with kcorrect (about 3 s, once per process)."""
    from astropy.cosmology import Planck18
    from astropy.io import fits
    import kcorrect.kcorrect

    with fits.open(str(catalog_path())) as hdul:
        data = hdul[1].data
        ra = np.asarray(data["RA"], dtype=np.float64)
        dec = np.asarray(data["DEC"], dtype=np.float64)
        z = np.asarray(data["Z"], dtype=np.float64)
        flux = np.asarray(data["MODELFLUX"], dtype=np.float64)
        ivar = np.asarray(data["MODELFLUX_IVAR"], dtype=np.float64)
        ext = np.asarray(data["EXTINCTION"], dtype=np.float64)

    # KcorrectSDSS is Kcorrect with the sdss_[ugriz]0 responses plus the SDSS -> AB zero-point offsets
    # (u -0.036 ... z +0.040 mag) applied to its input, which plain Kcorrect would leave out.
    kc = kcorrect.kcorrect.KcorrectSDSS(redshift_range=[0.0, _KCORRECT_ZMAX], nredshift=_KCORRECT_NZ)
    dered = 10.0 ** (0.4 * ext)
    maggies = flux * 1e-9 * dered
    maggies_ivar = ivar * 1e18 / dered**2
    coeffs = np.asarray(kc.fit_coeffs(redshift=z, maggies=maggies, ivar=maggies_ivar), dtype=np.float64)
    derived = kc.derived(redshift=z, coeffs=coeffs)
    r_maggies = np.asarray(kc.reconstruct(redshift=z, coeffs=coeffs), dtype=np.float64)[:, 2]
    mass = np.asarray(derived["mremain"], dtype=np.float64)
    valid = (mass > 0) & (r_maggies > 0) & np.isfinite(z) & (z > 0)
    with np.errstate(divide="ignore"):
        log_mass = np.where(mass > 0, np.log10(np.where(mass > 0, mass, 1.0)), np.nan)
    kpc_per_arcsec = Planck18.angular_diameter_distance(z).to_value("kpc") * np.pi / 180.0 / 3600.0
    return SdssCatalog(
        ra=ra, dec=dec, redshift=z, modelflux=flux, modelflux_ivar=ivar, extinction=ext,
        ebv=ext[:, 2] / _SFD_SDSS_R, coeffs=coeffs, r_maggies=r_maggies, log_stellar_mass=log_mass,
        metallicity=np.asarray(derived["metallicity"], dtype=np.float64),
        b300=np.asarray(derived["b300"], dtype=np.float64),
        b1000=np.asarray(derived["b1000"], dtype=np.float64),
        kpc_per_arcsec=kpc_per_arcsec, valid=valid)


@lru_cache(maxsize=1)
def _templates() -> tuple[np.ndarray, np.ndarray]:
    """Rest-frame wavelength (A, vacuum) and the 5 kcorrect template SEDs (erg/s/cm^2/A at 10 pc)."""
    import kcorrect.template

    path = files("kcorrect") / "data" / "templates" / "kcorrect-default-v4.fits"
    tmpl = kcorrect.template.Template(filename=str(path), interpolate=False)
    return (np.asarray(tmpl.restframe_wave, dtype=np.float64),
            np.asarray(tmpl.restframe_flux, dtype=np.float64))


@lru_cache(maxsize=8)
def _filter(name: str):
    import speclite.filters

    return speclite.filters.load_filter(name)


def observed_sed(coeffs: np.ndarray, redshift: float, wave: np.ndarray = SED_WAVE) -> np.ndarray:
    """The template combination redshifted to the observer frame, in the templates' (arbitrary) units.

    f_obs(lambda) = sum_k c_k T_k(lambda / (1 + z)) / (1 + z): a pure redshift conserving bolometric
    flux, the convention of kcorrect's own projections. Absolute units come from :func:`sed_flux_units`.
    """
    rest_wave, rest_flux = _templates()
    rest = np.asarray(wave, dtype=np.float64) / (1.0 + redshift)
    sed = np.zeros(rest.shape)
    for c, template in zip(np.asarray(coeffs, dtype=np.float64), rest_flux):
        if c != 0.0:
            sed += c * np.interp(rest, rest_wave, template, left=0.0, right=0.0)
    return sed / (1.0 + redshift)


def band_maggies(filter_name: str, flux_cgs: np.ndarray, wave: np.ndarray = SED_WAVE) -> np.ndarray:
    """AB maggies of f_lambda (erg/s/cm^2/A; one spectrum or a (n, wave) stack) through a speclite filter.

    speclite refuses a spectrum that does not cover the whole filter table, so the spectrum is padded
    with zeros to the table's extent first.
    """
    filt = _filter(filter_name)
    wave = np.asarray(wave, dtype=np.float64)
    flux = np.atleast_2d(np.asarray(flux_cgs, dtype=np.float64))
    lo, hi = float(filt.wavelength[0]), float(filt.wavelength[-1])
    if wave[0] > lo or wave[-1] < hi:
        step = float(np.median(np.diff(wave)))
        left = np.arange(lo - step, wave[0] - 0.5 * step, step) if wave[0] > lo else np.empty(0)
        right = wave[-1] + step * np.arange(1, int(np.ceil((hi - wave[-1]) / step)) + 2) \
            if wave[-1] < hi else np.empty(0)
        flux = np.concatenate([np.zeros((flux.shape[0], left.size)), flux,
                               np.zeros((flux.shape[0], right.size))], axis=1)
        wave = np.concatenate([left, wave, right])
    maggies = np.asarray(filt.get_ab_maggies(flux, wave), dtype=np.float64)
    return maggies if np.ndim(flux_cgs) > 1 else maggies.reshape(-1)[0]


def sed_flux_units(coeffs: np.ndarray, redshift: float, r_maggies: float) -> np.ndarray:
    """The galaxy's dereddened observed-frame SED on :data:`SED_WAVE` in erg/s/cm^2/A.

    The template units (flux at 10 pc) never enter: the SED is scaled so its SDSS r maggies (speclite
    ``sdss2010-r``) equal kcorrect's reconstructed r maggies, which were fitted to the real photometry.
    """
    sed = observed_sed(coeffs, redshift)
    return sed * (r_maggies / band_maggies(_SDSS_R_FILTER, sed))


# --------------------------------------------------------------------------------------- Galactic dust

def f99_extinction(wave: np.ndarray, r_v: float = 3.1) -> np.ndarray:
    """A(lambda) / E(B-V) of the Fitzpatrick (1999) Milky Way curve (optical/IR part, 2600 A - 3.8 um).

    Written here because no installed package provides it, and adding a dependency for a natural
    cubic spline through nine published anchor points is not worth it. The anchors and polynomials are
    those of Fitzpatrick's ``fm_unred`` (as in the ``extinction`` and ``dust_extinction`` packages).
    """
    from scipy.interpolate import CubicSpline

    x = 1e4 / np.asarray(wave, dtype=np.float64)  # inverse microns
    if np.any((x < 1e4 / 38000.0) | (x > 1e4 / 2600.0)):
        raise ValueError("f99_extinction covers 2600 A - 3.8 um only")
    # UV anchors at 2700 and 2600 A from the Fitzpatrick & Massa parametrisation.
    c2 = -0.824 + 4.717 / r_v
    c1 = 2.030 - 3.007 * c2
    x0, gamma, c3 = 4.596, 0.99, 3.23
    xuv = 1e4 / np.array([2700.0, 2600.0])
    drude = xuv**2 / ((xuv**2 - x0**2) ** 2 + (xuv * gamma) ** 2)
    yuv = c1 + c2 * xuv + c3 * drude + r_v
    anchors_x = np.concatenate([[0.0], 1e4 / np.array([26500.0, 12200.0, 6000.0, 5470.0, 4670.0, 4110.0]),
                                xuv])
    anchors_y = np.concatenate([
        [0.0], np.array([0.26469, 0.82925]) * r_v / 3.1,
        [np.polyval([2.13572e-04, 1.00270, -4.22809e-01], r_v),
         np.polyval([-7.35778e-05, 1.00216, -5.13540e-02], r_v),
         np.polyval([-3.32598e-05, 1.00184, 7.00127e-01], r_v),
         np.polyval([-4.45636e-05, 7.97809e-04, -5.46959e-03, 1.01707, 1.19456], r_v)],
        yuv])
    return CubicSpline(anchors_x, anchors_y, bc_type="natural")(x)


@lru_cache(maxsize=1)
def _sf11_scale() -> float:
    """0.86 / E(B-V)_synthetic: SF11 define E(B-V) by synthetic B - V photometry of their 7000 K source
    (Bessell B, V here), which for the F99 curve is 0.968 of its nominal value."""
    wave = np.arange(3000.0, 12000.0, 1.0)
    x = 1.4387769e8 / (wave * 7000.0)  # h c / (lambda k T), lambda in A
    blackbody = wave**-5.0 / np.expm1(x)
    ebv = 0.01  # small, to stay in the linear regime where the coefficients are defined
    reddened = blackbody * 10.0 ** (-0.4 * ebv * f99_extinction(wave))
    excess = [-2.5 * np.log10(band_maggies(f, reddened, wave) / band_maggies(f, blackbody, wave)) / ebv
              for f in ("bessell-B", "bessell-V")]
    return _SF11_RECALIBRATION / (excess[0] - excess[1])


@lru_cache(maxsize=1)
def _sf11_curve_on_sed_wave() -> np.ndarray:
    return _sf11_scale() * f99_extinction(SED_WAVE)


def mw_transmission(ebv_sfd: float, wave: np.ndarray | None = None) -> np.ndarray:
    """Fraction of light the Milky Way lets through, 10^(-0.4 A(lambda)), for a given E(B-V)_SFD.

    ``wave`` defaults to :data:`SED_WAVE`. This is the Schlafly & Finkbeiner (2011) prescription:
    the F99 curve with R_V = 3.1, normalised to SF11's synthetic E(B-V) and their 0.86 recalibration
    of the SFD map. Integrated through DECam g, r, z for a 7000 K source it gives back their tabulated
    A_b / E(B-V)_SFD (3.214, 2.165, 1.211) to 1% (tested).
    """
    curve = _sf11_curve_on_sed_wave() if wave is None else _sf11_scale() * f99_extinction(wave)
    return 10.0 ** (-0.4 * curve * float(ebv_sfd))


def desi_slice(sed_on_sed_wave: np.ndarray) -> np.ndarray:
    """The part of an SED on :data:`SED_WAVE` that lies on the DESI grid :data:`DESI_WAVE`."""
    return sed_on_sed_wave[..., _DESI_SLICE]
