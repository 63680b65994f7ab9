"""DESI coadd FITS files (``coadd-*.fits``) and their redrock redshift files (``redrock-*.fits``).

Layout (desispec data model): ``FIBERMAP`` (one row per spectrum: TARGETID, TARGET_RA/DEC, OBJTYPE,
Legacy Surveys photometry) and, per camera arm ``X`` in B, R, Z: ``X_WAVELENGTH`` (nwave,),
``X_FLUX``/``X_IVAR``/``X_MASK`` (nspec, nwave) and ``X_RESOLUTION`` (nspec, ndiag, nwave), the
diagonals of the resolution matrix in scipy ``dia_matrix`` order (offsets +ndiag//2 ... -ndiag//2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..records import Galaxy, InvalidDataError, Photometry, Spectrum
from ._common import as_str, finish, get_column, get_data, get_hdu, hdu_names, open_fits, warn

__all__ = ["read_desi_coadd", "merge_arms", "resolution_sigma", "find_redrock"]

PHOTOMETRY_BANDS = ("G", "R", "Z", "W1", "W2")
# Arms must sit on one common grid; allow float64 round-off of the stored wavelengths.
GRID_TOLERANCE = 1e-3  # in units of the pixel step


@dataclass
class _Arm:
    name: str
    wave: np.ndarray  # (nwave,)
    flux: np.ndarray  # (nspec, nwave)
    ivar: np.ndarray
    mask: np.ndarray
    resolution: np.ndarray  # (nspec, ndiag, nwave)


def resolution_sigma(resolution: np.ndarray, step: float | np.ndarray) -> np.ndarray:
    """Per-pixel line-spread sigma (Angstrom) from DESI resolution-matrix diagonals.

    ``resolution`` is (..., ndiag, nwave); column j of the band holds the response of output pixels
    j - k (k = +ndiag//2 ... -ndiag//2) to a delta at pixel j, i.e. the discrete LSF kernel at j.
    sigma is the square root of that kernel's second central moment, in pixels, times the pixel
    step. Pixels whose kernel has no positive weight or a non-positive variance get NaN.
    """
    ndiag = resolution.shape[-2]
    offsets = np.arange(ndiag // 2, -(ndiag // 2) - 1, -1, dtype=np.float64)[:, None]
    kernel = np.asarray(resolution, dtype=np.float64)
    norm = kernel.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (kernel * offsets).sum(axis=-2) / norm
        var = (kernel * offsets**2).sum(axis=-2) / norm - mean**2
        sigma = np.sqrt(np.where((norm > 0) & (var > 0), var, np.nan)) * step
    return sigma


def merge_arms(arms: list[_Arm], source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray, np.ndarray]:
    """Put the arms on their union grid, the way desispec's ``coadd_cameras`` does.

    Each arm's weight is ivar * (mask == 0) with non-finite flux/ivar given zero weight; flux and
    resolution are weight-averaged where arms overlap. Returns wave, flux, ivar, good (some arm had
    weight > 0), resolution (nspec, ndiag, nwave) and the per-spectrum count of non-finite values.
    """
    # Written here rather than imported: desispec is not pip-installable with its dependencies, and
    # the merge is a few lines once the arms are known to share a grid.
    steps = np.concatenate([np.diff(a.wave) for a in arms])
    step = float(np.median(steps))
    if not np.all(np.abs(steps - step) < GRID_TOLERANCE * step):
        raise InvalidDataError(f"arm wavelength grids are not uniform with step {step:g} A",
                               source=source, field=f"{arms[0].name}_WAVELENGTH")
    start = min(float(a.wave[0]) for a in arms)
    stop = max(float(a.wave[-1]) for a in arms)
    nwave = int(round((stop - start) / step)) + 1
    wave = start + step * np.arange(nwave)
    nspec, ndiag = arms[0].flux.shape[0], max(a.resolution.shape[1] for a in arms)
    wflux = np.zeros((nspec, nwave))
    weight = np.zeros((nspec, nwave))
    wres = np.zeros((nspec, ndiag, nwave))
    cover = np.zeros(nwave)
    n_nonfinite = np.zeros(nspec, dtype=int)
    plain_res = np.zeros((nspec, ndiag, nwave))
    for arm in arms:
        pos = (arm.wave - start) / step
        idx = np.rint(pos).astype(int)
        if np.any(np.abs(pos - idx) > GRID_TOLERANCE):
            raise InvalidDataError(f"arm {arm.name} is not on the common {step:g} A grid starting at "
                                   f"{start:g} A", source=source, field=f"{arm.name}_WAVELENGTH")
        bad = ~np.isfinite(arm.flux) | ~np.isfinite(arm.ivar)
        n_nonfinite += bad.sum(axis=1)
        w = np.where(bad | (arm.mask != 0), 0.0, arm.ivar)
        flux = np.where(bad, 0.0, arm.flux)
        res = arm.resolution
        pad = (ndiag - res.shape[1]) // 2  # centre a narrower band inside the widest one
        res = np.nan_to_num(np.pad(res, ((0, 0), (pad, pad), (0, 0))))
        wflux[:, idx] += w * flux
        weight[:, idx] += w
        wres[:, :, idx] += w[:, None, :] * res
        plain_res[:, :, idx] += res
        cover[idx] += 1
    good = weight > 0
    safe = np.where(good, weight, 1.0)
    flux = np.where(good, wflux / safe, 0.0)
    # Where no arm has weight the resolution is still known: use the plain mean of the arms.
    resolution = np.where(good[:, None, :], wres / safe[:, None, :], plain_res / np.maximum(cover, 1))
    return wave, flux, weight, good, resolution, n_nonfinite


def _read_arms(hdul, source: str) -> list[_Arm]:
    names = set(hdu_names(hdul))
    # "BRZ" is the single arm of a file already merged by desispec's coadd_cameras.
    letters = [c for c in ("B", "R", "Z", "BRZ") if f"{c}_FLUX" in names]
    if not letters:
        raise InvalidDataError("no camera arm found (expected B_FLUX, R_FLUX, Z_FLUX)", source=source,
                               field="B_FLUX")
    arms = []
    for c in letters:
        parts = {}
        for part in ("WAVELENGTH", "FLUX", "IVAR", "MASK", "RESOLUTION"):
            key = f"{c}_{part}"
            if part == "MASK" and key not in names:
                parts[part] = None
                continue
            parts[part] = np.asarray(get_data(get_hdu(hdul, key, source), source))
        wave, flux, ivar = parts["WAVELENGTH"].astype(np.float64), parts["FLUX"], parts["IVAR"]
        if wave.ndim != 1 or wave.size < 2:
            raise InvalidDataError(f"expected a 1-D wavelength array, got shape {wave.shape}",
                                   source=source, field=f"{c}_WAVELENGTH")
        if not np.all(np.isfinite(wave)) or np.any(np.diff(wave) <= 0):
            raise InvalidDataError("wavelengths must be finite and strictly increasing", source=source,
                                   field=f"{c}_WAVELENGTH")
        for part, arr in (("FLUX", flux), ("IVAR", ivar)):
            if arr.ndim != 2 or arr.shape[1] != wave.size:
                raise InvalidDataError(f"expected shape (nspec, {wave.size}), got {arr.shape}",
                                       source=source, field=f"{c}_{part}")
        if ivar.shape != flux.shape:
            raise InvalidDataError(f"shape {ivar.shape} does not match {c}_FLUX {flux.shape}",
                                   source=source, field=f"{c}_IVAR")
        mask = np.zeros(flux.shape, np.int64) if parts["MASK"] is None else parts["MASK"]
        res = parts["RESOLUTION"]
        if mask.shape != flux.shape:
            raise InvalidDataError(f"shape {mask.shape} does not match {c}_FLUX {flux.shape}",
                                   source=source, field=f"{c}_MASK")
        if res.ndim != 3 or res.shape[0] != flux.shape[0] or res.shape[2] != wave.size or res.shape[1] % 2 == 0:
            raise InvalidDataError(f"expected shape (nspec, odd ndiag, {wave.size}), got {res.shape}",
                                   source=source, field=f"{c}_RESOLUTION")
        arms.append(_Arm(c, wave, flux.astype(np.float64), ivar.astype(np.float64), mask, res))
    nspec = {a.flux.shape[0] for a in arms}
    if len(nspec) != 1:
        raise InvalidDataError(f"arms hold different numbers of spectra {sorted(nspec)}", source=source,
                               field="FLUX")
    return arms


def find_redrock(coadd_path: str | Path) -> Path | None:
    """The redrock file beside a coadd (``coadd-X.fits`` -> ``redrock-X.fits``), or None."""
    coadd_path = Path(coadd_path)
    if not coadd_path.name.startswith("coadd-"):
        return None
    candidate = coadd_path.with_name("redrock-" + coadd_path.name[len("coadd-"):])
    return candidate if candidate.is_file() else None


def _read_redrock(path: Path) -> dict[int, dict[str, float | int | str]]:
    source = str(path)
    with open_fits(path) as hdul:
        table = get_data(get_hdu(hdul, "REDSHIFTS", source), source)
        tid = get_column(table, "TARGETID", source).astype(np.int64)
        z = get_column(table, "Z", source).astype(float)
        zwarn = get_column(table, "ZWARN", source).astype(np.int64)
        spectype = get_column(table, "SPECTYPE", source)
        zerr = (get_column(table, "ZERR", source).astype(float)
                if "ZERR" in {n.upper() for n in table.columns.names} else None)
    out = {}
    for i, t in enumerate(tid):
        labels = {"redshift": float(z[i]), "zwarn": int(zwarn[i]), "spectype": as_str(spectype[i])}
        if zerr is not None:
            labels["redshift_err"] = float(zerr[i])
        out[int(t)] = labels
    return out


def read_desi_coadd(path: str | Path, redrock: str | Path | None = None) -> list[Galaxy]:
    """Read the target spectra of one DESI coadd file, arms merged onto one wavelength grid.

    - Spectrum: the B, R, Z arms merged on their union 0.8 A grid (3600-9824 A, 7781 pixels for
      the standard DESI cameras) with ivar-weighted averages in the arm overlaps, as desispec's
      ``coadd_cameras``; mask = True where some arm has ivar > 0 and MASK == 0. Pixels where no arm
      has good data get flux 0, ivar 0, mask False. lsf_sigma (Angstrom) is the second-moment
      width of the merged resolution-matrix kernel (:func:`resolution_sigma`).
      Non-finite flux or ivar values get zero weight; their count is reported with a
      :class:`~astroembed.data.readers.ReaderWarning`.
    - object_id ``desi-<TARGETID>``; ra, dec from TARGET_RA, TARGET_DEC.
    - Photometry: FLUX_G/R/Z/W1/W2 (nanomaggies) with FLUX_IVAR_*, the bands present in FIBERMAP.
    - Labels ``redshift``, ``redshift_err``, ``zwarn``, ``spectype`` from the REDSHIFTS HDU of
      ``redrock`` (default: ``redrock-X.fits`` beside ``coadd-X.fits`` when it exists; no redshift
      labels otherwise), matched by TARGETID.

    Fibres that are not real targets (OBJTYPE != 'TGT', e.g. sky fibres and unassigned positioners)
    or whose ivar is zero in every arm are *skipped*; the count is reported with a ReaderWarning.
    """
    source = str(path)
    with open_fits(path) as hdul:
        fibermap = get_data(get_hdu(hdul, "FIBERMAP", source), source)
        arms = _read_arms(hdul, source)
        targetid = get_column(fibermap, "TARGETID", source).astype(np.int64)
        ra = get_column(fibermap, "TARGET_RA", source).astype(float)
        dec = get_column(fibermap, "TARGET_DEC", source).astype(float)
        fm_names = {n.upper() for n in fibermap.columns.names}
        objtype = (np.array([as_str(v) for v in get_column(fibermap, "OBJTYPE", source)])
                   if "OBJTYPE" in fm_names else np.full(len(targetid), "TGT"))
        bands = [b for b in PHOTOMETRY_BANDS if f"FLUX_{b}" in fm_names]
        phot_flux = np.stack([get_column(fibermap, f"FLUX_{b}", source) for b in bands], 1) if bands else None
        phot_ivar = None
        if bands and all(f"FLUX_IVAR_{b}" in fm_names for b in bands):
            phot_ivar = np.stack([get_column(fibermap, f"FLUX_IVAR_{b}", source) for b in bands], 1)
    nspec = arms[0].flux.shape[0]
    if len(targetid) != nspec:
        raise InvalidDataError(f"FIBERMAP has {len(targetid)} rows for {nspec} spectra", source=source,
                               field="FIBERMAP")
    for arm in arms:
        if np.any(arm.ivar[np.isfinite(arm.ivar)] < 0):
            row = int(np.argmax(np.any(arm.ivar < 0, axis=1)))
            raise InvalidDataError("negative inverse-variance values", source=source,
                                   object_id=f"desi-{targetid[row]}", field=f"{arm.name}_IVAR")
    wave, flux, ivar, good, resolution, n_nonfinite = merge_arms(arms, source)
    sigma = resolution_sigma(resolution, wave[1] - wave[0])

    if redrock is None:
        redrock = find_redrock(path)
    elif not Path(redrock).is_file():
        raise InvalidDataError("redrock file does not exist", source=str(redrock))
    redshifts = _read_redrock(Path(redrock)) if redrock is not None else {}

    kept = (objtype == "TGT") & good.any(axis=1)
    galaxies, no_z = [], 0
    for i in np.flatnonzero(kept):
        oid = f"desi-{targetid[i]}"
        photometry = None
        if bands:
            photometry = Photometry(bands=tuple(b if b.startswith("W") else b.lower() for b in bands),
                                    flux=phot_flux[i], ivar=None if phot_ivar is None else phot_ivar[i])
        labels = dict(redshifts.get(int(targetid[i]), {}))
        if redshifts and not labels:
            no_z += 1
        spectrum = Spectrum(flux=flux[i], wavelength=wave, ivar=ivar[i], mask=good[i], lsf_sigma=sigma[i])
        galaxies.append(Galaxy(oid, ra[i], dec[i], spectrum=spectrum, photometry=photometry, labels=labels))
    if not kept.all():
        warn(f"skipped {int((~kept).sum())} of {nspec} fibres that are not real targets "
             "(OBJTYPE != 'TGT' or zero ivar in every arm)", source)
    if n_nonfinite[kept].sum():
        warn(f"masked {int(n_nonfinite[kept].sum())} non-finite flux/ivar values in "
             f"{int((n_nonfinite[kept] > 0).sum())} of {int(kept.sum())} objects", source)
    if no_z:
        warn(f"{no_z} targets have no row in the redrock file {redrock}", source)
    return finish(galaxies, source)
