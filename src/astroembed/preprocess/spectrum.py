"""Raw spectra -> spectrum-transformer input: resample, normalise, cut into overlapping patches.

One code path (:func:`prepare_batch` / :func:`prepare_spectra`) serves training and embedding, so a
saved model always sees spectra prepared the way it was trained on (the config is saved beside it).

1. **Resample** onto the model grid (:func:`resample`), from any strictly increasing input grid (SDSS
   log-lambda, DESI linear 0.8 A, ...). Flux-conserving rebinning by pixel overlap.
   Pixel edges are the midpoints between neighbouring centres (the outer edges half a step out), both
   for the input and the model grid. Let input pixel i have width d_i, flux density f_i and inverse
   variance w_i (w_i = 0 where masked or non-finite), and let o_ij be the overlap in Angstrom of input
   pixel i with output pixel j, so phi_ij = o_ij / d_i is the fraction of pixel i inside pixel j. Then

       ivar_j = sum_i phi_ij w_i                                   (1)
       flux_j = sum_i phi_ij w_i f_i / ivar_j                      (2)

   (2) is the inverse-variance weighted mean of the overlapping input pixels, each weighted by how much
   of it lies in the output pixel; with uniform ivar and full coverage it reduces to the
   flux-conserving mean sum_i o_ij f_i / width_j. (1) treats ivar as information per Angstrom,
   w_i / d_i, integrated over the output pixel: the total information over any fully covered range is
   the same before and after resampling. Merging two pixels of ivar 1 gives ivar 2 (exactly the
   variance of their mean); splitting one pixel of ivar 1 in two gives two pixels of ivar 1/2 (the
   per-Angstrom noise level is unchanged, and the halves do not count the same photons twice).
   An output pixel with no valid input overlap (outside the input range, or only masked input under
   it) gets flux 0, ivar 0, mask False.

   Both sums are computed exactly with cumulative integrals: the integrals of the piecewise-constant
   densities w/d and w f/d are piecewise linear in wavelength, so linear interpolation of their
   cumulative sums at the output edges is exact. This is O(n_in + n_out) per spectrum, batched in
   torch (CPU or GPU), with per-row wavelength grids; written here because SpectRes/specutils are
   per-spectrum numpy loops without ivar-aware masking.

2. **Normalise** each spectrum by a robust scale s = max(median |flux| over valid pixels, scale_floor):
   flux / s, ivar * s^2 (so flux * sqrt(ivar) is unchanged). log10(s) is kept as an input to the
   model (the "scale token"), since the amplitude carries information (distance, luminosity) that the
   normalisation would otherwise throw away.

3. **Patch** the normalised flux into overlapping windows of ``patch_size`` pixels every
   ``patch_stride`` pixels (AstroCLIP uses 20 and 10). The end is padded with invalid pixels so every
   pixel lies in a patch. Invalid pixels (mask False or ivar 0) have their flux and ivar zeroed before
   patching, and a per-pixel validity channel travels with the flux, so whatever value a bad pixel
   held (even NaN) never reaches the model. The normalised ivar is patched the same way: it is the
   per-pixel weight of the masked-modelling loss (bad pixels weigh 0).

Flux unit: 1e-17 erg/s/cm^2/A (SDSS and DESI), which ``scale_floor`` assumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from astroembed.config import Config
from astroembed.data.records import InvalidDataError

__all__ = [
    "SpectrumPreprocessConfig",
    "pixel_edges",
    "resample",
    "normalise",
    "patchify",
    "model_batch",
    "patches_to_pixels",
    "interpolate_gaps",
    "prepare_batch",
    "prepare_spectra",
    "BATCH_KEYS",
]

# What prepare_batch returns; the model reads the patch_* entries and log10_scale.
BATCH_KEYS = ("flux", "ivar", "valid", "log10_scale", "patch_flux", "patch_ivar", "patch_valid")


@dataclass
class SpectrumPreprocessConfig(Config):
    """Model wavelength grid, normalisation and patching. Plain data: ``to_dict``/``from_dict`` via JSON.

    The grid is ``wave_min, wave_min + wave_step, ..., wave_max`` (Angstrom, pixel centres). The DESI
    grid (3600-9824 A, 0.8 A: 7781 pixels, AstroCLIP's input) is ``wave_step=0.8``; the default 2 A
    (3113 pixels, 310 patches) keeps a CPU model fast and still resolves galaxy lines (SDSS resolution
    is ~2.5 A FWHM at 5000 A).

    Attributes
    ----------
    wave_min, wave_max, wave_step
        model grid in Angstrom (wave_max is included if it falls on the grid).
    patch_size, patch_stride
        patch length and step in pixels.
    scale_floor
        smallest normalisation scale (flux units), so empty or sky spectra do not blow up.
    flux_clip
        normalised flux is clipped to [-flux_clip, flux_clip] (unmasked cosmic rays and
        bad sky subtraction otherwise dominate the loss); ``None`` disables.
    """

    wave_min: float = 3600.0
    wave_max: float = 9824.0
    wave_step: float = 2.0
    patch_size: int = 20
    patch_stride: int = 10
    scale_floor: float = 1e-2
    flux_clip: float | None = 50.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.wave_min) and np.isfinite(self.wave_max) and 0 < self.wave_min < self.wave_max):
            raise ValueError(f"need 0 < wave_min < wave_max, got {self.wave_min}, {self.wave_max}")
        if not (np.isfinite(self.wave_step) and self.wave_step > 0):
            raise ValueError(f"wave_step must be > 0, got {self.wave_step}")
        for name in ("patch_size", "patch_stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.patch_stride > self.patch_size:
            raise ValueError(f"patch_stride {self.patch_stride} > patch_size {self.patch_size} would skip pixels")
        if self.n_pixels < self.patch_size:
            raise ValueError(f"the grid has {self.n_pixels} pixels, fewer than patch_size {self.patch_size}")
        if not self.scale_floor > 0:
            raise ValueError(f"scale_floor must be > 0, got {self.scale_floor}")
        if self.flux_clip is not None and not self.flux_clip > 0:
            raise ValueError(f"flux_clip must be > 0 or None, got {self.flux_clip}")

    @property
    def n_pixels(self) -> int:
        # The small tolerance keeps wave_max on the grid despite float rounding (3600 + 7780 * 0.8).
        return int(np.floor((self.wave_max - self.wave_min) / self.wave_step + 1e-6)) + 1

    @property
    def grid(self) -> np.ndarray:
        """Pixel-centre wavelengths of the model grid, float64 (n_pixels,)."""
        return self.wave_min + self.wave_step * np.arange(self.n_pixels, dtype=np.float64)

    @property
    def n_padded(self) -> int:
        """Pixels after padding the end so the last patch is full."""
        return self.patch_size + self.patch_stride * (self.n_patches - 1)

    @property
    def n_patches(self) -> int:
        return -(-(self.n_pixels - self.patch_size) // self.patch_stride) + 1


def pixel_edges(centres: torch.Tensor) -> torch.Tensor:
    """Pixel edges (..., n + 1) from strictly increasing centres (..., n), n >= 2.

    Inner edges are midpoints; the outer edges lie half the neighbouring step beyond the end centres.
    """
    mid = 0.5 * (centres[..., 1:] + centres[..., :-1])
    first = centres[..., :1] - 0.5 * (centres[..., 1:2] - centres[..., :1])
    last = centres[..., -1:] + 0.5 * (centres[..., -1:] - centres[..., -2:-1])
    return torch.cat([first, mid, last], dim=-1)


def _interp(x: torch.Tensor, y: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """Row-wise linear interpolation of y(x) at xq, constant beyond the ends. x: (N, n), y: (N, n), xq: (N, m)."""
    n = x.shape[-1]
    idx = torch.searchsorted(x, xq, right=True).clamp(1, n - 1)
    x0, x1 = x.gather(-1, idx - 1), x.gather(-1, idx)
    y0, y1 = y.gather(-1, idx - 1), y.gather(-1, idx)
    t = ((xq - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return y0 + t * (y1 - y0)


def _to_tensor(a, name: str, dtype=torch.float64, device=None) -> torch.Tensor:
    try:
        if isinstance(a, torch.Tensor):
            return a.to(device=device if device is not None else a.device, dtype=dtype)
        # astype also converts FITS big-endian columns, which torch cannot wrap.
        arr = np.asarray(a).astype(bool if dtype == torch.bool else np.float64)
        return torch.as_tensor(arr, device=device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidDataError(f"cannot be read as numbers ({exc})", field=name) from None


def _check_inputs(flux, ivar, mask, wavelength, source=None):
    """Validate and clean (documented masking of non-finite values, as in records.py); 2-D float64 tensors."""
    ctx = {"source": source}
    device = flux.device if isinstance(flux, torch.Tensor) else None
    f = _to_tensor(flux, "spectrum_flux", device=device)
    one_d = f.ndim == 1
    if f.ndim not in (1, 2) or f.shape[-1] < 2:
        raise InvalidDataError(f"expected (n_pix,) or (N, n_pix) with n_pix >= 2, got shape {tuple(f.shape)}",
                               field="spectrum_flux", **ctx)
    w = torch.ones_like(f) if ivar is None else _to_tensor(ivar, "spectrum_ivar", device=f.device)
    m = torch.ones_like(f, dtype=torch.bool) if mask is None else _to_tensor(mask, "spectrum_mask", torch.bool,
                                                                               f.device)
    lam = _to_tensor(wavelength, "spectrum_lambda", device=f.device)
    for t, name in ((w, "spectrum_ivar"), (m, "spectrum_mask")):
        if t.shape != f.shape:
            raise InvalidDataError(f"shape {tuple(t.shape)} does not match flux shape {tuple(f.shape)}",
                                   field=name, **ctx)
    f, w, m = (t.reshape(-1, t.shape[-1]) for t in (f, w, m))
    if lam.ndim not in (1, 2) or lam.shape[-1] != f.shape[-1] or (lam.ndim == 2 and lam.shape[0] != f.shape[0]):
        raise InvalidDataError(f"shape {tuple(lam.shape)} does not fit flux shape {tuple(f.shape)} "
                               f"(give (n_pix,) shared by all rows or (N, n_pix))", field="spectrum_lambda", **ctx)
    lam = lam.reshape(-1, lam.shape[-1]).expand(f.shape[0], -1)
    if not bool(torch.isfinite(lam).all()) or bool((lam <= 0).any()):
        raise InvalidDataError("wavelengths must be finite and positive", field="spectrum_lambda", **ctx)
    if bool((torch.diff(lam, dim=-1) <= 0).any()):
        row = int(torch.nonzero((torch.diff(lam, dim=-1) <= 0).any(-1))[0])
        raise InvalidDataError(f"wavelengths must be strictly increasing (row {row} is not)",
                               field="spectrum_lambda", **ctx)
    finite_w = torch.isfinite(w)
    if bool((w[finite_w] < 0).any()):
        raise InvalidDataError(f"{int((w[finite_w] < 0).sum())} negative inverse-variance values",
                               field="spectrum_ivar", **ctx)
    good = m & finite_w & torch.isfinite(f) & (w > 0)
    zero = torch.zeros((), dtype=f.dtype, device=f.device)
    return torch.where(good, f, zero), torch.where(good, w, zero), good, lam, one_d


def resample(flux, ivar, mask, wavelength, grid) -> tuple[Any, Any, Any]:
    """Rebin spectra onto ``grid`` conserving flux and inverse variance (see the module docstring).

    Parameters
    ----------
    flux
        (n_in,) or (N, n_in) flux density, numpy or torch (any device).
    ivar
        same shape, inverse variance (>= 0); ``None`` = all ones. Non-finite values are masked.
    mask
        same shape, True = good; ``None`` = all good. Pixels with mask False, ivar 0, or a
        non-finite flux or ivar never contribute.
    wavelength
        (n_in,) shared, or (N, n_in) per row; strictly increasing Angstrom.
    grid
        (n_out,) output pixel centres, strictly increasing, n_out >= 2.

    Returns
    -------
    ``(flux, ivar, mask)`` on the grid, float32 / float32 / bool, (n_out,) or (N, n_out) like the
    input; numpy in -> numpy out, torch in -> torch out (on flux's device).

    Raises
    ------
    InvalidDataError
        bad shapes, non-increasing wavelengths, negative ivar.
    """
    as_numpy = not isinstance(flux, torch.Tensor)
    f, w, good, lam, one_d = _check_inputs(flux, ivar, mask, wavelength)
    g = _to_tensor(grid, "grid", device=f.device)
    if g.ndim != 1 or g.shape[0] < 2 or bool((torch.diff(g) <= 0).any()):
        raise ValueError("grid must be a strictly increasing 1-D array of at least 2 wavelengths")

    # Cumulative integrals of the densities w/d and w f/d at the input edges: sum_{i<k} w_i and
    # sum_{i<k} w_i f_i. Interpolating them linearly inside pixel i adds phi_ij w_i, i.e. equations (1), (2).
    edges_in = pixel_edges(lam)  # (N, n_in + 1)
    zeros = torch.zeros_like(edges_in[:, :1])
    cum_w = torch.cat([zeros, torch.cumsum(w, dim=-1)], dim=-1)
    cum_wf = torch.cat([zeros, torch.cumsum(w * f, dim=-1)], dim=-1)
    edges_out = pixel_edges(g).expand(f.shape[0], -1).contiguous()
    out_w = torch.diff(_interp(edges_in, cum_w, edges_out), dim=-1)
    out_wf = torch.diff(_interp(edges_in, cum_wf, edges_out), dim=-1)
    # Cumulative sums leave round-off of ~1e-16 x the running total where the true sum is 0 (masked
    # stretches); anything below that relative level is no information, not a tiny ivar.
    tol = 1e-12 * cum_w[:, -1:].clamp_min(torch.finfo(cum_w.dtype).tiny)
    ok = out_w > tol
    out_f = torch.where(ok, out_wf / torch.where(ok, out_w, torch.ones_like(out_w)), torch.zeros_like(out_w))
    out_w = torch.where(ok, out_w, torch.zeros_like(out_w))

    out = (out_f.float(), out_w.float(), ok)
    if one_d:
        out = tuple(t[0] for t in out)
    if as_numpy:
        out = tuple(t.cpu().numpy() for t in out)
    return out  # type: ignore[return-value]


def normalise(flux: torch.Tensor, ivar: torch.Tensor, valid: torch.Tensor,
              config: SpectrumPreprocessConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Divide each row by its robust scale; returns (flux / s, ivar * s^2, log10 s), zeros where invalid.

    s = max(median of |flux| over valid pixels, ``config.scale_floor``); rows with no valid pixel get
    the floor. flux: (N, n) float, ivar: (N, n), valid: (N, n) bool.
    """
    nan = torch.full((), float("nan"), dtype=flux.dtype, device=flux.device)
    med = torch.nanmedian(torch.where(valid, flux.abs(), nan), dim=-1).values
    scale = torch.nan_to_num(med, nan=config.scale_floor).clamp_min(config.scale_floor)
    zero = torch.zeros((), dtype=flux.dtype, device=flux.device)
    f = torch.where(valid, flux / scale[:, None], zero)
    if config.flux_clip is not None:
        f = f.clamp(-config.flux_clip, config.flux_clip)
    w = torch.where(valid, ivar * scale[:, None] ** 2, zero)
    return f, w, torch.log10(scale)


def patchify(x: torch.Tensor, patch_size: int, patch_stride: int) -> torch.Tensor:
    """(N, n) pixel values -> (N, n_patches, patch_size) overlapping windows (a view, not a copy)."""
    return x.unfold(-1, patch_size, patch_stride)


def patches_to_pixels(patch_mask: torch.Tensor, patch_size: int, patch_stride: int, n_pixels: int) -> torch.Tensor:
    """(N, n_patches) bool -> (N, n_pixels) bool: True for every pixel inside any True patch."""
    n, p = patch_mask.shape
    idx = (torch.arange(p, device=patch_mask.device)[:, None] * patch_stride
           + torch.arange(patch_size, device=patch_mask.device)).reshape(1, -1).expand(n, -1)
    src = patch_mask[:, :, None].expand(-1, -1, patch_size).reshape(n, -1).float()
    out = torch.zeros(n, n_pixels, device=patch_mask.device)
    return out.scatter_reduce(1, idx, src, reduce="amax") > 0


def interpolate_gaps(flux: torch.Tensor, usable: torch.Tensor) -> torch.Tensor:
    """Fill the pixels where ``usable`` is False by linear interpolation between the nearest usable
    pixels on either side (constant beyond the first/last usable pixel; 0 in a row with none), as
    ``np.interp`` does row by row, but batched: (N, n) -> (N, n), O(N n), on the tensors' device.

    Written here because torch has no 1-D gap interpolation; the previous and next usable pixel of
    every position come from running maxima of their indices.
    """
    n, length = flux.shape
    pos = torch.arange(length, device=flux.device).expand(n, -1)
    minus_one = torch.full_like(pos, -1)
    prev = torch.where(usable, pos, minus_one).cummax(dim=1).values                       # -1: none before
    after = torch.where(usable, length - 1 - pos, minus_one).flip(1).cummax(dim=1).values.flip(1)
    nxt = torch.where(after >= 0, length - 1 - after, minus_one)                            # -1: none after
    f_prev = flux.gather(1, prev.clamp(min=0))
    f_next = flux.gather(1, nxt.clamp(min=0))
    span = (nxt - prev).clamp(min=1).to(flux.dtype)
    between = f_prev + (f_next - f_prev) * (pos - prev).to(flux.dtype) / span
    out = torch.where((prev >= 0) & (nxt >= 0), between, torch.where(prev >= 0, f_prev, f_next))
    out = torch.where(usable, flux, out)
    return torch.where(usable.any(dim=1, keepdim=True), out, torch.zeros_like(out))


def _finish(flux: torch.Tensor, ivar: torch.Tensor, valid: torch.Tensor,
            config: SpectrumPreprocessConfig) -> dict[str, torch.Tensor]:
    """Grid-resampled (N, n_pixels) arrays -> the model batch (normalise, pad, patch)."""
    f, w, log_scale = normalise(flux.float(), ivar.float(), valid, config)
    pad = config.n_padded - config.n_pixels
    f, w = torch.nn.functional.pad(f, (0, pad)), torch.nn.functional.pad(w, (0, pad))
    v = torch.nn.functional.pad(valid.float(), (0, pad))
    return model_batch(f, w, v, log_scale, config)


def model_batch(flux: torch.Tensor, ivar: torch.Tensor, valid: torch.Tensor, log10_scale: torch.Tensor,
                config: SpectrumPreprocessConfig) -> dict[str, torch.Tensor]:
    """Normalised, padded (N, n_padded) arrays -> the model batch, with the patches as views."""
    valid = valid.float()
    return {
        "flux": flux, "ivar": ivar, "valid": valid, "log10_scale": log10_scale,
        "patch_flux": patchify(flux, config.patch_size, config.patch_stride),
        "patch_ivar": patchify(ivar, config.patch_size, config.patch_stride),
        "patch_valid": patchify(valid, config.patch_size, config.patch_stride),
    }


def prepare_batch(flux, ivar, mask, wavelength, config: SpectrumPreprocessConfig | None = None,
                  device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Spectra on any grid -> the spectrum model's input batch (resample, normalise, patch).

    Parameters
    ----------
    flux, ivar, mask, wavelength
        as for :func:`resample` ((N, n_in) or (n_in,); wavelength shared
        or per row). Spectra of different lengths: use :func:`prepare_spectra`.
    config
        grid and patching; default ``SpectrumPreprocessConfig()``.
    device
        where the batch goes (default: flux's device).

    Returns
    -------
    dict of float32 tensors: ``flux``, ``ivar``, ``valid`` (N, n_padded) normalised, zero where
    invalid or padded; ``log10_scale`` (N,); ``patch_flux``, ``patch_ivar``, ``patch_valid``
    (N, n_patches, patch_size).
    """
    config = config or SpectrumPreprocessConfig()
    if isinstance(flux, torch.Tensor) and device is not None:
        flux = flux.to(device)
    elif not isinstance(flux, torch.Tensor):
        flux = torch.as_tensor(np.asarray(flux, dtype=np.float64), device=device)
    f, w, m = resample(flux, ivar, mask, wavelength, config.grid)
    if f.ndim == 1:
        f, w, m = f[None], w[None], m[None]
    return _finish(f, w, m, config)


def prepare_spectra(spectra: Sequence, config: SpectrumPreprocessConfig | None = None,
                    device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Like :func:`prepare_batch` for a list of spectra of different lengths and grids.

    Parameters
    ----------
    spectra
        :class:`astroembed.data.records.Spectrum` objects (anything with ``flux``, ``ivar``,
        ``mask``, ``wavelength`` attributes), each on its own grid.
    """
    config = config or SpectrumPreprocessConfig()
    if len(spectra) == 0:
        raise ValueError("no spectra given")
    rows = [resample(torch.as_tensor(np.asarray(s.flux, dtype=np.float64), device=device), s.ivar, s.mask,
                     s.wavelength, config.grid) for s in spectra]
    f, w, m = (torch.stack([r[k] for r in rows]) for k in range(3))
    return _finish(f, w, m, config)
