"""The built-in survey: paired images and spectra rendered from 10,000 real SDSS galaxies.

No real set of galaxies with both a Legacy-Surveys image and a DESI spectrum ships with any pip
package, so we build one from real ingredients that do:

- positions, redshifts, ugriz photometry and Galactic extinction of 10,000 real SDSS galaxies
  (``kcorrect``'s ``gst_tests_small.fits``), fitted with kcorrect's SED templates, which give each
  galaxy an SED, a stellar mass, a metallicity and recent star-formation fractions
  (:mod:`astroembed.data.sed`);
- DECam g, r, z filter curves (``speclite``) for the image fluxes and GalSim bulge + disk profiles,
  PSFs and noise for the cutouts; a DESI-grid spectrum of the same SED (:mod:`astroembed.data.render`).

Each record is a :class:`~astroembed.data.records.Galaxy` with object id ``sdss-gst-<row>`` naming
its row of the FITS file, the real RA/Dec, an image (g, r, z; 0.262"/pix; nanomaggies), a spectrum
(3600-9824 A in 0.8 A steps; 1e-17 erg/s/cm^2/A; *total* galaxy flux, no fibre-aperture loss), the
real SDSS ugriz model fluxes as photometry, and labels: redshift, log_stellar_mass, metallicity,
sfr_300myr_fraction, sfr_1gyr_fraction, ebv (E(B-V)_SFD), bulge_fraction, half_light_radius_arcsec,
axis_ratio, position_angle_deg, sdss_row. About 1% of cutouts carry a simulated dead column in one band
(mask False, ivar 0, flux 0). The spectrum's emission lines are as broad as the kcorrect templates'
own sampling (~5 A rest frame at H-alpha), wider than DESI's line-spread function, which is applied
on top and stored per pixel (``lsf_sigma``).

Reproducibility: the rows are the first ``n`` of a permutation drawn from ``seed``, and each galaxy's
random draws come from ``SeedSequence(seed, spawn_key=(row,))``. So the output depends only on
``seed`` (never on ``workers``), and ``simulate_galaxies(n)`` is a prefix of ``simulate_galaxies(m)``
for ``n < m``.
"""

from __future__ import annotations

import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .records import Galaxy
from .render import GalaxyRecipe, render_galaxy
from .sed import load_catalog

__all__ = ["simulate_galaxies", "iter_simulated_galaxies", "simulate_survey", "select_rows",
           "galaxy_rng", "recipe_for_row", "SURVEY_NAME"]

SURVEY_NAME = "astroembed_sim"
# Galaxies per task sent to a worker: big enough to amortise pickling, small enough to balance load.
_BATCH = 8


def select_rows(n: int, seed: int = 0) -> np.ndarray:
    """The catalogue rows simulated for ``(n, seed)``: the first ``n`` of a seeded permutation."""
    catalog = load_catalog()
    valid = np.flatnonzero(catalog.valid)
    n = int(n)
    if not 0 <= n <= valid.size:
        raise ValueError(f"n must be between 0 and {valid.size} (the number of SDSS galaxies), got {n}")
    return np.random.default_rng(np.random.SeedSequence(int(seed))).permutation(valid)[:n]


def galaxy_rng(seed: int, row: int) -> np.random.Generator:
    """The random generator of one galaxy: child ``row`` of ``SeedSequence(seed)``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(row),)))


def recipe_for_row(row: int) -> GalaxyRecipe:
    """The per-galaxy inputs of one catalogue row (what a worker process needs to render it)."""
    c = load_catalog()
    row = int(row)
    return GalaxyRecipe(
        row=row, ra=float(c.ra[row]), dec=float(c.dec[row]), redshift=float(c.redshift[row]),
        coeffs=tuple(float(v) for v in c.coeffs[row]), r_maggies=float(c.r_maggies[row]),
        ebv=float(c.ebv[row]), log_stellar_mass=float(c.log_stellar_mass[row]),
        metallicity=float(c.metallicity[row]), b300=float(c.b300[row]), b1000=float(c.b1000[row]),
        kpc_per_arcsec=float(c.kpc_per_arcsec[row]),
        sdss_flux=tuple(float(v) for v in c.modelflux[row]),
        sdss_flux_ivar=tuple(float(v) for v in c.modelflux_ivar[row]))


def _render_batch(recipes: Sequence[GalaxyRecipe], seed: int, image_size: int) -> list[Galaxy]:
    return [render_galaxy(r, galaxy_rng(seed, r.row), image_size=image_size) for r in recipes]


def iter_simulated_galaxies(n: int, seed: int = 0, image_size: int = 96, workers: int = 2,
                            progress: bool = False) -> Iterator[Galaxy]:
    """Yield ``n`` simulated galaxies in a fixed order, rendering ahead on ``workers`` processes.

    Memory stays bounded (a few batches per worker in flight), so this is the form to use for
    writing large surveys; :func:`simulate_galaxies` collects it into a list. ``workers > 1`` uses a
    process pool with the platform's default start method: where that is spawn or forkserver
    (macOS, Windows, Python >= 3.14), call it from under ``if __name__ == "__main__":`` in scripts.
    """
    if int(image_size) < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    rows = select_rows(n, seed)
    recipes = [recipe_for_row(r) for r in rows]
    batches = [recipes[i:i + _BATCH] for i in range(0, len(recipes), _BATCH)]
    done = 0

    def report(count):
        if progress:
            print(f"\rsimulated {count}/{len(recipes)} galaxies", end="" if count < len(recipes) else "\n",
                  file=sys.stderr, flush=True)

    if workers == 1 or len(batches) <= 1:
        for batch in batches:
            for galaxy in _render_batch(batch, seed, image_size):
                yield galaxy
            done += len(batch)
            report(done)
        return

    pool = ProcessPoolExecutor(max_workers=int(workers))
    try:
        pending: deque = deque()
        queue = iter(batches)
        for batch in queue:  # keep a bounded window of batches in flight, results in order
            pending.append(pool.submit(_render_batch, batch, seed, image_size))
            if len(pending) >= 4 * workers:
                break
        while pending:
            galaxies = pending.popleft().result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(_render_batch, nxt, seed, image_size))
            yield from galaxies
            done += len(galaxies)
            report(done)
    finally:  # also reached when the caller stops iterating early: drop the work still queued
        pool.shutdown(wait=True, cancel_futures=True)


def simulate_galaxies(n: int, seed: int = 0, image_size: int = 96, workers: int = 2,
                      progress: bool = False) -> list[Galaxy]:
    """Render ``n`` galaxies (any ``n`` up to 10,000) as paired image + spectrum records.

    Deterministic in ``seed`` and independent of ``workers``. Each galaxy holds about 0.35 MB at the
    default 96 x 96 image size: for thousands of galaxies prefer :func:`iter_simulated_galaxies` or
    :func:`simulate_survey`, which stream.
    """
    return list(iter_simulated_galaxies(n, seed=seed, image_size=image_size, workers=workers,
                                        progress=progress))


def simulate_survey(n: int, seed: int, out, image_size: int = 96, workers: int = 2,
                    progress: bool = False) -> Path:
    """Simulate ``n`` galaxies and stream them into the MMU HDF5 layout under ``out``.

    Returns the survey's config folder, ``out/astroembed_sim/default``.
    """
    from ..optional import require_extra

    require_extra("survey", "the built-in survey")
    from .mmu import write_survey

    galaxies = iter_simulated_galaxies(n, seed=seed, image_size=image_size, workers=workers,
                                       progress=progress)
    write_survey(galaxies, root=out, survey=SURVEY_NAME, config="default")
    return Path(out) / SURVEY_NAME / "default"
