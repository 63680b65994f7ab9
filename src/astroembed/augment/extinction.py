"""Galactic extinction coefficients R_b = A_b / E(B-V) for the survey filters we augment.

Reddening by a change dE in E(B-V) dims band b by A_b = R_b * dE magnitudes, i.e. multiplies its flux
by 10^(-0.4 R_b dE). Colours therefore change by exactly -(R_b1 - R_b2) dE when flux ratios are written
as -2.5 log10(f1 / f2) (a redder colour for dE > 0).

Band names may be plain ("g") or qualified by the filter system ("decam_g", "sdss-r", "hsc_i", or a
speclite-style name such as "decam2014-g" / "hsc2017-y"). A plain name is looked up in ``default_system``
(DECam, the Legacy Surveys camera, unless told otherwise). Anything not in the tables is an error:
silently using another filter's coefficient would bias colours.
"""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["R_COEFFICIENTS", "extinction_coefficients"]

R_COEFFICIENTS: dict[str, dict[str, float]] = {
    # Schlafly & Finkbeiner 2011, ApJ 737, 103, Table 6 (R_V = 3.1), DECam rows; the same values the
    # Legacy Surveys catalogues use for MW_TRANSMISSION_G/R/Z.
    "decam": {"g": 3.214, "r": 2.165, "z": 1.211},
    # Schlafly & Finkbeiner 2011, Table 6 (R_V = 3.1), SDSS rows.
    "sdss": {"u": 4.239, "g": 3.303, "r": 2.285, "i": 1.698, "z": 1.263},
    # HSC-SSP Public Data Release coefficients (Aihara et al. 2018, PASJ 70, S8; the values used for
    # the a_g..a_y extinction columns of the PDR catalogues).
    "hsc": {"g": 3.24, "r": 2.276, "i": 1.633, "z": 1.263, "y": 1.075},
}

_QUALIFIED = re.compile(r"^([a-z]+)\d*[_\-\s]([a-z])$")


def _lookup(band: str, default_system: str) -> float:
    name = str(band).strip().lower()
    match = _QUALIFIED.match(name)
    system, short = (match.group(1), match.group(2)) if match else (default_system.lower(), name)
    table = R_COEFFICIENTS.get(system)
    if table is None or short not in table:
        known = ", ".join(f"{s}: {''.join(t)}" for s, t in R_COEFFICIENTS.items())
        raise ValueError(
            f"no Galactic extinction coefficient for band {band!r} (filter system {system!r}); known "
            f"bands are {known}. Qualify the band (e.g. 'sdss_g'), set the filter system, or turn "
            f"reddening off (physical=False) for RGB or unknown bands.")
    return table[short]


def extinction_coefficients(bands: Sequence[str], default_system: str = "decam") -> list[float]:
    """R_b = A_b / E(B-V) for each band name, in order.

    >>> extinction_coefficients(["g", "r", "z"])
    [3.214, 2.165, 1.211]
    >>> extinction_coefficients(["sdss_u", "hsc-y"])
    [4.239, 1.075]
    """
    return [_lookup(b, default_system) for b in bands]
