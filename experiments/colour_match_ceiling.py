"""What the built-in survey allows: image <-> spectrum retrieval by colours alone, no learning.

    python experiments/colour_match_ceiling.py --demo demo_output

For the 30 % held out by the main job's split: the g - r and r - z colours of each cutout (flux summed inside a
circle of ``--radius`` pixels) and of each spectrum (its flux averaged through speclite's DECam g, r, z
curves, where it covers them), one constant offset per colour (the median over the held-out galaxies, the
only thing fitted), and each image's nearest spectra in colour. Prints the colour scatter (1.4826 MAD of the
ln-flux ratios) and the top-1 / top-1 % recall both ways (``evaluate.retrieval``'s conventions, by
colour distance).
The spectra are the galaxies' total flux (data/simulate.py), so the colours agree up to noise:
BENCHMARKS.md, "Measured fluxes in the alignment".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import speclite.filters

from astroembed.data.mmu import MMUSurvey
from astroembed.pipeline import SURVEY, held_out_split


def image_colours(flux: np.ndarray, radius: float) -> np.ndarray:
    h, w = flux.shape[-2:]
    yy, xx = np.mgrid[:h, :w]
    inside = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) < radius
    total = np.log(np.clip(flux[:, inside].sum(-1), 1e-6, None))
    return np.array([total[0] - total[1], total[1] - total[2]])


def spectrum_colours(wavelength: np.ndarray, flux: np.ndarray, ivar: np.ndarray, curves) -> np.ndarray:
    usable = ivar > 0
    band = []
    for curve in curves:
        response = curve(wavelength) * usable * wavelength  # photon-counting weight
        band.append(np.log(max(float(np.sum(flux * response) / np.sum(response)), 1e-6)))
    return np.array([band[0] - band[1], band[1] - band[2]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_output"))
    parser.add_argument("--radius", type=float, default=32.0, help="aperture radius in pixels")
    args = parser.parse_args()
    survey_path = args.demo / "survey" / SURVEY / "default"
    _, _, test = held_out_split(survey_path, 0)
    survey = MMUSurvey(survey_path)
    curves = speclite.filters.load_filters("decam2014-g", "decam2014-r", "decam2014-z")
    a, b = [], []
    for index in test:
        galaxy = survey[int(index)]
        a.append(image_colours(galaxy.image.flux, args.radius))
        s = galaxy.spectrum
        b.append(spectrum_colours(s.wavelength, s.flux, s.ivar, curves))
    a, b = np.array(a), np.array(b)
    a -= np.median(a - b, axis=0)
    scatter = 1.4826 * np.median(np.abs(a - b - np.median(a - b, axis=0)), axis=0)
    print(f"{len(test)} held-out galaxies; colour scatter (ln flux ratio) g-r {scatter[0]:.4f}, r-z {scatter[1]:.4f}")
    # evaluate.retrieval ranks by cosine similarity; colours are compared by distance, with its conventions
    # (a tie costs the partner a place; top-1 % = within the first ceil(n / 100) places)
    distance = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    top = max(1, int(np.ceil(0.01 * len(test))))
    for name, d in (("image -> spectrum", distance), ("spectrum -> image", distance.T)):
        ranks = (d <= np.diag(d)[:, None]).sum(1) - 1
        print(f"{name}: top-1 {np.mean(ranks == 0):.3f}, top-1 % {np.mean(ranks < top):.3f} "
              f"(chance {top / len(test):.3f})")


if __name__ == "__main__":
    main()
