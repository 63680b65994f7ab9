"""Batched astrophysical image augmentations (Hayat, Stein et al. 2021), one call per batch on CPU or GPU.

A view of a galaxy is a new observation of it (dust, seeing, depth) seen from a new viewpoint
(orientation, size, framing). Each step has its physical meaning; they are *executed* in the order
that costs least, which gives the same result because the steps commute:

1. Geometry, one bilinear resampling for the batch: rotation by any angle, size rescaling by s, a
   jitter of the crop centre, and the exact 90-degree turns and flips folded into the same matrix
   (:func:`view_grid`). Total flux is conserved: the view is multiplied by 1/s^2, so a galaxy made s
   times larger keeps its magnitude (surface brightness drops by s^2).
2. PSF blur from the image's FWHM to a drawn target FWHM per band: a Gaussian of
   sigma_aug = sqrt(sigma_target^2 - sigma_now^2) native pixels (no-op where target <= now). The
   target is the seeing of the new observation on the native pixel grid, so the viewpoint magnifies it
   like everything else: the blur is applied to the view with sigma s * sigma_aug, which equals
   blurring before the resampling (a circular Gaussian commutes with rotation and scales with s) and
   costs a 64-pixel crop (plus the kernel's margin, so no edge effect) instead of the whole cutout.
3. Galactic reddening: flux_b *= 10^(-0.4 R_b dE), dE drawn (``extinction.py`` for R_b); a per-band
   factor, applied together with 1/s^2 and the noise in one multiply-add.
4. Gaussian noise up to a drawn target level *in the view*: adds sqrt(target^2 - now^2) of white
   noise, where "now" is the input noise (median 1/sqrt(ivar), else 1.4826 * MAD) carried through
   steps 1-3: the resampling's bilinear weights (exact, :func:`bilinear_noise_factor`), the blur
   (sqrt(sum k^2)), the reddening and 1/s^2. The target is the view's pixel noise, the noise level
   the network sees (an instrument's sky noise does not change with the size of the galaxy).

Noise is drawn at the crop size, not the cutout size; that and the blur on the crop are most of why
this order is faster than blurring and adding noise on the native grid first (BENCHMARKS.md).

RGB 8-bit cutouts (no ivar, PSF or calibrated bands) get only geometric + noise: pass
``physical=False`` in the config, or feed uint8 (N, H, W, 3) input, which turns it off by itself.
Blur is also skipped where the PSF FWHM is unknown (argument None or NaN entries).

Parameters are drawn by :meth:`ImageAugmenter.sample_params` into an :class:`AugmentParams` (noise
field included), so a batch can be replayed, sliced per sample, or inspected by tests.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from astroembed.augment.extinction import extinction_coefficients
from astroembed.preprocess.image import RGB_BANDS, median_lastdim, robust_sigma, strided_pixels
from astroembed.config import Config
from astroembed.data.records import InvalidDataError

__all__ = [
    "ImageAugmentConfig",
    "AugmentParams",
    "ImageAugmenter",
    "redden",
    "reddening_factor",
    "gaussian_blur",
    "blur_sigma_pixels",
    "blur_to_fwhm",
    "estimate_noise_sigma",
    "add_noise",
    "affine_crop",
    "view_grid",
    "bilinear_noise_factor",
    "dihedral",
    "FWHM_PER_SIGMA",
]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548 for a Gaussian


# ---------------------------------------------------------------------------------------------------
# Configuration and drawn parameters
# ---------------------------------------------------------------------------------------------------

@dataclass
class ImageAugmentConfig(Config):
    """Ranges and switches of the image augmentations (plain data; to_dict/from_dict for JSON).

    Geometry: ``rotate`` (uniform angle in [0, 360) deg), ``rot90`` and ``flip`` (exact), ``max_shift``
    (crop-centre jitter, uniform in +-max_shift native pixels per axis; 0 = off), ``scale_range``
    (uniform size factor s; (1, 1) = off), ``crop_size`` (output side in pixels).
    Physics (only with ``physical``): ``redden`` with dE(B-V) uniform in ``ebv_range`` (negative =
    de-reddening) and plain band names looked up in ``filter_system``; ``blur`` to a target FWHM
    uniform in ``psf_fwhm_range`` arcsec, drawn per band.
    Colour (any input, off by default): ``gain_jitter`` multiplies each band by exp(gain_jitter * N(0, 1)),
    drawn per sample and band: the 8-bit RGB stand-in for reddening, which needs fluxes in known bands.
    Noise (also for RGB): the view's pixel noise is brought to a target sigma = u * input sigma with u
    uniform in ``noise_scale_range``, or, when ``noise_sigma_range`` maps every band to (lo, hi) in
    flux units, uniform in that range (never lowered: where the view is already noisier, as after a
    shrink by s < 1, which scales pixels by 1/s^2, nothing is added).
    """

    crop_size: int = 64
    rotate: bool = True
    rot90: bool = True
    flip: bool = True
    max_shift: float = 4.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    physical: bool = True
    redden: bool = True
    ebv_range: tuple[float, float] = (0.0, 0.1)
    filter_system: str = "decam"
    blur: bool = True
    psf_fwhm_range: tuple[float, float] = (1.0, 2.0)
    noise: bool = True
    noise_scale_range: tuple[float, float] = (1.0, 1.5)
    noise_sigma_range: dict[str, tuple[float, float]] | None = None
    gain_jitter: float = 0.0

    def __post_init__(self):
        self.crop_size = int(self.crop_size)
        if self.crop_size < 1:
            raise ValueError(f"crop_size must be >= 1, got {self.crop_size}")
        if not (math.isfinite(self.gain_jitter) and self.gain_jitter >= 0):
            raise ValueError(f"gain_jitter must be >= 0, got {self.gain_jitter}")
        if not (math.isfinite(self.max_shift) and self.max_shift >= 0):
            raise ValueError(f"max_shift must be >= 0 pixels, got {self.max_shift}")
        for name, positive in (("scale_range", True), ("ebv_range", False), ("psf_fwhm_range", True),
                               ("noise_scale_range", True)):
            setattr(self, name, _check_range(getattr(self, name), name, positive))
        if self.noise_sigma_range is not None:
            self.noise_sigma_range = {str(b): _check_range(r, f"noise_sigma_range[{b!r}]", True)
                                      for b, r in dict(self.noise_sigma_range).items()}


def _check_range(value, name: str, positive: bool) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi) or (positive and lo <= 0):
        raise ValueError(f"{name} must be finite with low <= high{' and low > 0' if positive else ''},"
                         f" got ({lo}, {hi})")
    return lo, hi


@dataclass
class AugmentParams:
    """Everything random about one batch of views; row i belongs to sample i.

    angle (N,) radians; scale (N,); shift (N, 2) crop-centre offset (x = column, y = row) in native
    pixels; k90 (N,) int in 0..3; flip (N,) bool (left-right, after the turn); ebv (N,) dE(B-V);
    psf_fwhm (N, B) target arcsec; noise_target (N, B) (a factor, or a sigma with noise_sigma_range);
    noise (N, B, crop, crop) standard normal field (empty when noise is off); gain (N, B)
    multiplicative band gains (1 when off).
    """

    angle: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    k90: torch.Tensor
    flip: torch.Tensor
    ebv: torch.Tensor
    psf_fwhm: torch.Tensor
    noise_target: torch.Tensor
    noise: torch.Tensor
    gain: torch.Tensor

    def select(self, index) -> "AugmentParams":
        """The parameters of the samples ``index`` (int, slice or index tensor), batch dim kept."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return AugmentParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to(self, device) -> "AugmentParams":
        return AugmentParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


# ---------------------------------------------------------------------------------------------------
# The individual operations (batched, device-agnostic); usable on their own
# ---------------------------------------------------------------------------------------------------

def reddening_factor(bands: Sequence[str], ebv: torch.Tensor,
                     filter_system: str = "decam") -> torch.Tensor:
    """10^(-0.4 R_b dE) per sample and band (N, B): the flux factor of a change dE(B-V) of dust."""
    r_b = torch.tensor(extinction_coefficients(bands, filter_system), dtype=ebv.dtype, device=ebv.device)
    return torch.pow(10.0, -0.4 * ebv.view(-1, 1) * r_b.view(1, -1))


def redden(flux: torch.Tensor, bands: Sequence[str], ebv: torch.Tensor,
           filter_system: str = "decam") -> tuple[torch.Tensor, torch.Tensor]:
    """Apply dE(B-V) per sample: flux_b * 10^(-0.4 R_b dE). Returns (flux, factor (N, B))."""
    factor = reddening_factor(bands, ebv.to(flux), filter_system)
    return flux * factor[:, :, None, None], factor


def _gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Normalised 1-D Gaussians (M, 2 radius + 1); sigma == 0 gives the identity (a delta).

    Each row is cut at ceil(4 sigma) of its own sigma, so a sample's kernel does not depend on the
    other samples in the batch (the batch only sets the common array length).
    """
    x = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device).view(1, -1)
    s = sigma.clamp(min=1e-6).view(-1, 1)
    k = torch.exp(-0.5 * (x / s) ** 2) * (x.abs() <= torch.ceil(4.0 * s))
    return k / k.sum(dim=1, keepdim=True)


def blur_radius(sigma: torch.Tensor) -> int:
    """Half-width in pixels of the kernels for these sigmas (0 when no row needs blurring)."""
    s_max = float(sigma.max()) if sigma.numel() else 0.0
    return int(math.ceil(4.0 * s_max)) if s_max >= 1e-3 else 0


# Up to this image side a blur is two dense matrix products per plane, above it a grouped convolution:
# on CPU, BLAS runs the (H x H) products 2-3x faster than PyTorch's depthwise convolution runs its
# (2r + 1)-tap kernels at survey cutout sizes (64-128 px), and falls behind near 160 px
# (a one-off timing on 2 cores, 768 planes of 96 px: 31 vs 82 ms).
MATMUL_BLUR_MAX_SIZE = 160


def _reflect_blur_matrices(kernels: torch.Tensor, size: int, first_row: int = 0,
                           n_rows: int | None = None) -> torch.Tensor:
    """(M, n_rows, size) matrices B with (B @ v)[i] = (v convolved with kernel)[first_row + i].

    kernels (M, 2r + 1), r < size; the boundary reflects as in F.pad (mirrored about the edge
    pixel, which is not repeated). Entry [i, j] sums the taps t with reflect(first_row + i + t - r)
    == j. Built as one product of the kernels with a 0/1 tap-to-entry map shared by all rows.
    """
    n_rows = size - first_row if n_rows is None else n_rows
    taps = kernels.shape[1]
    radius = taps // 2
    dev = kernels.device
    rows = torch.arange(first_row, first_row + n_rows, device=dev).view(-1, 1)
    src = (rows + torch.arange(-radius, radius + 1, device=dev)).abs()
    src = torch.where(src > size - 1, 2 * (size - 1) - src, src)  # (n_rows, taps): column of tap t
    tap_map = torch.zeros(taps, n_rows, size, dtype=kernels.dtype, device=dev)
    tap_idx = torch.arange(taps, device=dev).expand(n_rows, taps)
    row_idx = torch.arange(n_rows, device=dev).view(-1, 1).expand(n_rows, taps)
    tap_map.index_put_((tap_idx, row_idx, src), torch.ones((), dtype=kernels.dtype, device=dev),
                       accumulate=True)
    return (kernels @ tap_map.view(taps, -1)).view(-1, n_rows, size)


def gaussian_blur(flux: torch.Tensor, sigma: torch.Tensor,
                  out_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur each (sample, band) plane by a circular Gaussian of its own sigma (N, B) in pixels.

    Returns (blurred, white-noise factor (N, B) = sqrt(sum k^2) of each 2-D kernel). sigma < 1e-3
    leaves a plane unchanged. With ``out_size`` only the centred out_size x out_size region is
    returned, computed from the pixels around it (a margin of at least the kernel radius means no
    boundary effect); the array edge reflects as in F.pad. The whole batch at once: as
    B_rows X B_cols^T with blur matrices up to MATMUL_BLUR_MAX_SIZE pixels, else a depthwise
    convolution. kornia's gaussian_blur2d would also blur but gives neither the kernel (needed for the
    noise factor) nor sigma = 0 for the no-op rows.
    """
    n, b, h, w = flux.shape
    out_h, out_w = (h, w) if out_size is None else (out_size, out_size)
    top, left = (h - out_h) // 2, (w - out_w) // 2
    sigma = sigma.to(flux).reshape(-1)
    ones = torch.ones(n, b, dtype=flux.dtype, device=flux.device)
    radius = min(blur_radius(sigma), min(h, w) - 1)  # reflection needs radius < size
    if radius == 0:
        return flux[..., top:top + out_h, left:left + out_w], ones
    # When most planes need blurring all go through (sigma 0 is an exact identity kernel), which saves
    # gathering and scattering them; otherwise only those that need it (the others are copied).
    active = torch.nonzero(sigma >= 1e-3).squeeze(1)
    every = 2 * active.numel() > n * b
    if every:
        active = torch.arange(n * b, device=flux.device)
    m = active.numel()
    k = _gaussian_kernels(sigma[active], radius)  # (M, K)
    planes = flux.reshape(n * b, h, w) if every else flux.reshape(n * b, h, w)[active]
    if max(h, w) <= MATMUL_BLUR_MAX_SIZE:
        rows = _reflect_blur_matrices(k, h, top, out_h)
        cols = rows if (w, left, out_w) == (h, top, out_h) else _reflect_blur_matrices(k, w, left, out_w)
        blurred = rows @ planes @ cols.transpose(1, 2)
    else:
        x = F.pad(planes.unsqueeze(0), (radius,) * 4, mode="reflect")
        x = F.conv2d(x, k.view(m, 1, -1, 1), groups=m)
        blurred = F.conv2d(x, k.view(m, 1, 1, -1), groups=m)[0, :, top:top + out_h, left:left + out_w]
    if every:
        out = blurred
    else:
        out = flux[..., top:top + out_h, left:left + out_w].reshape(n * b, out_h, out_w)
        out = out.index_copy(0, active, blurred.contiguous())
    noise_factor = ones.reshape(-1).index_copy(0, active, (k ** 2).sum(dim=1))
    # (for a separable kernel sqrt(sum of 2-D squares) = the 1-D sum of squares)
    return out.view(n, b, out_h, out_w), noise_factor.view(n, b)


def blur_sigma_pixels(fwhm_now: torch.Tensor, fwhm_target: torch.Tensor,
                      pixel_scale: float) -> torch.Tensor:
    """sigma_aug = sqrt(sigma_target^2 - sigma_now^2) in pixels (N, B); 0 where target <= now or
    fwhm_now is NaN (unknown PSF)."""
    to_pix = 1.0 / (FWHM_PER_SIGMA * pixel_scale)
    s_now, s_tgt = fwhm_now * to_pix, fwhm_target.to(fwhm_now) * to_pix
    var = torch.where(torch.isfinite(s_now), s_tgt ** 2 - s_now ** 2, torch.zeros_like(s_now))
    return var.clamp(min=0).sqrt()


def blur_to_fwhm(flux: torch.Tensor, fwhm_now: torch.Tensor, fwhm_target: torch.Tensor,
                 pixel_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Convolve each (sample, band) so its Gaussian-equivalent PSF FWHM becomes the target.

    fwhm_now, fwhm_target: (N, B) arcsec; NaN in fwhm_now (unknown PSF) or target <= now -> unchanged.
    Returns (blurred flux, white-noise factor (N, B)) as :func:`gaussian_blur`.
    """
    return gaussian_blur(flux, blur_sigma_pixels(fwhm_now.to(flux), fwhm_target, pixel_scale))


def estimate_noise_sigma(flux: torch.Tensor, ivar: torch.Tensor | None = None,
                         max_pixels: int | None = None) -> torch.Tensor:
    """Per-sample, per-band pixel noise sigma (N, B).

    With ivar: median of 1/sqrt(ivar) over pixels with ivar > 0 (documented masking: ivar = 0 is no
    information). Without, or where every ivar is 0: 1.4826 * MAD of the pixels, robust to a galaxy
    covering less than half of the cutout (it overestimates sigma for larger ones). ``max_pixels``:
    both look at an evenly strided subset, as :func:`~astroembed.preprocess.image.robust_sigma`.
    """
    if ivar is None:
        return robust_sigma(flux, max_pixels)
    ivar = strided_pixels(ivar.to(flux), max_pixels)
    if bool((ivar > 0).all()):  # the usual case: 1/sqrt is monotonic, so take the median of ivar
        return median_lastdim(ivar).rsqrt()
    sig = torch.where(ivar > 0, ivar.clamp(min=1e-30).rsqrt(), torch.full_like(ivar, float("nan")))
    from_ivar = sig.nanmedian(dim=-1).values
    if torch.isfinite(from_ivar).all():
        return from_ivar
    return torch.where(torch.isfinite(from_ivar), from_ivar, robust_sigma(flux, max_pixels))


def add_noise(flux: torch.Tensor, sigma_now: torch.Tensor, sigma_target: torch.Tensor,
              noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add Gaussian noise of sqrt(max(target^2 - now^2, 0)) per sample and band, so the total is target.

    sigma_now, sigma_target: (N, B). noise: a standard-normal field like flux (drawn if None).
    """
    if noise is None:
        noise = torch.randn(flux.shape, generator=generator, dtype=flux.dtype,
                            device=generator.device if generator is not None else flux.device)
    extra = (sigma_target.to(flux) ** 2 - sigma_now.to(flux) ** 2).clamp(min=0).sqrt()
    return flux + noise.to(flux) * extra[:, :, None, None]


def _dihedral_matrices(k90: torch.Tensor, flip: torch.Tensor, dtype, device) -> torch.Tensor:
    """(N, 2, 2) integer matrices D taking a final (x, y) offset to the offset before the exact turn
    by k90 * 90 degrees (as torch.rot90 over the last two dims) and the left-right flip after it."""
    turn = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=dtype, device=device)
    powers = torch.stack([torch.linalg.matrix_power(turn, k) for k in range(4)])
    mirror = torch.ones(len(flip), 2, dtype=dtype, device=device)
    mirror[:, 0] = 1.0 - 2.0 * flip.to(device=device, dtype=dtype)
    return powers[k90.to(device).long()] * mirror.view(-1, 1, 2)  # R90^k @ diag(mirror)


def view_grid(in_hw: tuple[int, int], angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
              out_size: int, k90: torch.Tensor | None = None, flip: torch.Tensor | None = None) -> torch.Tensor:
    """The sampling grid (N, out, out, 2) of F.grid_sample (align_corners=False) for a view.

    A feature at offset q from the crop centre (image centre + shift, native pixels, (x, y) =
    (column, row)) lands at s R(angle) q from the output centre; then the exact 90-degree turns and
    flip (:func:`dihedral`) are folded into the same matrix, so one resampling does all geometry.
    """
    h, w = in_hw
    dtype, device = angle.dtype, angle.device
    cos, sin = torch.cos(angle), torch.sin(angle)
    # input offset = shift + (1/s) R(-angle) D output offset, then into grid_sample's [-1, 1] units
    # (align_corners=False: a pixel offset d from the centre is 2 d / size).
    m = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) / scale.view(-1, 1, 1)
    if k90 is not None:
        flip = torch.zeros_like(k90, dtype=torch.bool) if flip is None else flip
        m = m @ _dihedral_matrices(k90, flip, dtype, device)
    d_in = torch.tensor([w / 2.0, h / 2.0], dtype=dtype, device=device)
    lin = m * (out_size / 2.0) / d_in.view(1, 2, 1)
    offset = shift / d_in.view(1, 2)
    # F.affine_grid's (x, y) = lin @ (u, v) + offset on the output pixel centres, written out: it runs
    # a batched (out^2 x 3) @ (3 x 2) product that cost as much as the resampling itself on CPU
    # (one full-size add of a per-column and a per-row term, no interleaving copy)
    u = (torch.arange(out_size, dtype=dtype, device=device) * 2 + 1) / out_size - 1
    along_row = lin[:, None, None, :, 0] * u.view(1, 1, -1, 1)  # (N, 1, out, 2)
    along_col = lin[:, None, None, :, 1] * u.view(1, -1, 1, 1) + offset[:, None, None, :]  # (N, out, 1, 2)
    return along_row + along_col


def _resample(flux: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    # reflection: a rotated crop's corners can reach past the input (96 -> 64 at s = 0.9 and a 4 px
    # shift reaches 54 px from the centre); mirrored sky keeps them noise-like instead of black.
    return F.grid_sample(flux, grid.to(flux), mode="bilinear", padding_mode="reflection", align_corners=False)


def affine_crop(flux: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                crop_size: int, k90: torch.Tensor | None = None,
                flip: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate by ``angle`` (rad), magnify by ``scale``, crop crop_size pixels around the shifted centre
    and, when given, turn by k90 * 90 degrees and flip left-right; see :func:`view_grid`.

    One bilinear grid_sample for the whole batch. The result is multiplied by 1/s^2 so total flux is
    unchanged. With angle 0, scale 1 and shift 0 this is exactly the centre crop.
    """
    f = lambda t: None if t is None else t.to(flux.device)  # noqa: E731
    grid = view_grid(tuple(flux.shape[-2:]), angle.to(flux), scale.to(flux), shift.to(flux), crop_size,
                     f(k90), f(flip))
    return _resample(flux, grid) * (1.0 / scale.to(flux) ** 2).view(-1, 1, 1, 1)  # total flux unchanged


def bilinear_noise_factor(grid: torch.Tensor, in_hw: tuple[int, int], stride: int = 4) -> torch.Tensor:
    """Factor (N,) by which bilinear resampling on ``grid`` scales white pixel noise (rms over the view).

    A sample at fractional offsets (fx, fy) from a pixel is a weighted sum with variance factor
    ((1 - fx)^2 + fx^2)((1 - fy)^2 + fy^2): 1 on pixel centres, 1/4 midway between four pixels.
    Averaged over every ``stride``-th output pixel of each view.
    """
    h, w = in_hw
    g = grid[:, ::stride, ::stride]
    factor = torch.ones_like(g[..., 0])
    for axis, size in ((0, w), (1, h)):
        pix = ((g[..., axis] + 1) * size - 1) / 2  # align_corners=False: pixel centres at integers
        frac = pix - torch.floor(pix)
        factor = factor * ((1 - frac) ** 2 + frac ** 2)
    return factor.flatten(1).mean(dim=1).sqrt()


def dihedral(images: torch.Tensor, k90: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Per-sample exact turn by k90 * 90 degrees then left-right flip; images (N, B, S, S) square."""
    # Each sample is turned once, in groups by number of turns (selecting among all four turns of
    # the whole batch with torch.where cost four rotations per image).
    k90, flip = k90.to(images.device), flip.to(images.device)
    out = images.clone()
    for turns in (1, 2, 3):
        idx = torch.nonzero(k90 == turns).squeeze(1)
        if idx.numel():
            out[idx] = torch.rot90(images[idx], turns, dims=(-2, -1))
    idx = torch.nonzero(flip).squeeze(1)
    if idx.numel():
        out[idx] = out[idx].flip(-1)
    return out


# ---------------------------------------------------------------------------------------------------
# The augmenter
# ---------------------------------------------------------------------------------------------------

# Pixels per band the noise estimate looks at (an evenly strided subset; the medians are a large
# share of the augmentation cost): 1.4826 MAD from 1024 Gaussian pixels scatters by ~3.5 % around the
# true sigma, against a drawn target range of typically +-20 %.
NOISE_ESTIMATE_PIXELS = 1024


def _view_noise_factor(grid: torch.Tensor, in_hw: tuple[int, int],
                       blur_native: torch.Tensor | None) -> torch.Tensor:
    """Factor by which bilinear resampling and then the blur scale the input's white pixel noise.

    Each alone is exact (:func:`bilinear_noise_factor`; sqrt(sum k^2) of the blur kernel on the native
    grid, where the noise is white). Together they are combined as Gaussian kernels whose variances
    add: 1/F^2 = 1/F_interp^2 + 1/F_blur^2 - 1, which is exact when either is the identity and is
    within a few per cent otherwise (tests/augment/test_image.py measures it on blank sky).
    """
    inv_sq = bilinear_noise_factor(grid, in_hw).to(grid.dtype).pow(-2).view(-1, 1)
    if blur_native is not None:
        radius = blur_radius(blur_native)
        if radius:
            k = _gaussian_kernels(blur_native.reshape(-1), radius)
            f_blur = (k ** 2).sum(dim=1).view(blur_native.shape)
            inv_sq = inv_sq + f_blur.pow(-2) - 1.0
    return inv_sq.rsqrt()


NORMAL_CHUNKS = 4
_normal_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, workers, pool)


def _standard_normal(shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
    """A standard-normal field; on CPU filled in NORMAL_CHUNKS chunks by a thread pool.

    torch's CPU normal sampler runs on one thread and was a fifth of an augmentation batch's time.
    Each chunk has its own generator seeded from ``generator`` (or the global one), so the field is
    the same for any number of threads and reproducible from the caller's generator.
    """
    device = torch.device(device)
    numel = math.prod(shape)
    if device.type != "cpu" or numel < 1 << 16:
        return torch.randn(shape, generator=generator, device=device)
    global _normal_pool
    workers = max(1, min(NORMAL_CHUNKS, torch.get_num_threads()))  # torch's thread budget
    # a new pool per process: a forked DataLoader worker inherits the pool but not its threads
    if _normal_pool is None or _normal_pool[:2] != (os.getpid(), workers):
        _normal_pool = (os.getpid(), workers,
                        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="astroembed-randn"))
    seeds = torch.randint(0, 2 ** 62, (NORMAL_CHUNKS,), generator=generator, device=device).tolist()
    out = torch.empty(numel)
    bounds = [numel * i // NORMAL_CHUNKS for i in range(NORMAL_CHUNKS + 1)]

    def fill(i: int) -> None:
        out[bounds[i]:bounds[i + 1]].normal_(generator=torch.Generator().manual_seed(seeds[i]))

    list(_normal_pool[2].map(fill, range(NORMAL_CHUNKS)))
    return out.view(shape)


def _per_sample_band(value, n: int, b: int, name: str, device) -> torch.Tensor | None:
    """Scalar, (B,) or (N, B) -> (N, B) float tensor; None stays None."""
    if value is None:
        return None
    t = torch.as_tensor(np.asarray(value, dtype=np.float32) if not isinstance(value, torch.Tensor)
                        else value, dtype=torch.float32, device=device)
    if t.ndim == 0:
        t = t.expand(n, b)
    elif t.shape == (b,):
        t = t.unsqueeze(0).expand(n, b)
    elif t.shape != (n, b):
        raise InvalidDataError(f"expected a scalar, ({b},) or ({n}, {b}), got {tuple(t.shape)}", field=name)
    if torch.any(t[torch.isfinite(t)] <= 0) or torch.isinf(t).any():
        raise InvalidDataError("must be positive (NaN = unknown)", field=name)
    return t


class ImageAugmenter(nn.Module):
    """Random astrophysical views of a batch of cutouts; ``augmenter(flux, bands, ...)`` -> flux views.

    Output: augmented FLUX (N, B, crop, crop) in the input's units, ready for
    :func:`astroembed.preprocess.image.preprocess`. No learnable state; nn.Module so it moves with
    a model and shows up in its repr.
    """

    def __init__(self, config: ImageAugmentConfig | None = None):
        super().__init__()
        self.config = config or ImageAugmentConfig()

    def extra_repr(self) -> str:
        return repr(self.config)

    # -- validation ------------------------------------------------------------------------------
    def _prepare(self, flux, bands, ivar):
        if isinstance(flux, np.ndarray):
            flux = torch.from_numpy(np.ascontiguousarray(flux))
        if not isinstance(flux, torch.Tensor):
            raise InvalidDataError(f"expected a tensor, got {type(flux).__name__}", field="image_array")
        physical = self.config.physical
        if flux.dtype == torch.uint8:  # 8-bit RGB: geometric + noise only, flux stays in 0-255
            if flux.ndim != 4 or flux.shape[-1] != 3:
                raise InvalidDataError(f"uint8 RGB must be (N, H, W, 3), got {tuple(flux.shape)}",
                                       field="image_array")
            flux, physical = flux.permute(0, 3, 1, 2).float(), False
            bands = RGB_BANDS if bands is None else bands
        if flux.ndim != 4:
            raise InvalidDataError(f"expected (N, B, H, W) flux, got shape {tuple(flux.shape)}",
                                   field="image_array")
        if not flux.is_floating_point():
            flux = flux.float()
        bands = tuple(str(x) for x in bands)
        if len(bands) != flux.shape[1]:
            raise InvalidDataError(f"{len(bands)} band names {list(bands)} for {flux.shape[1]} bands",
                                   field="image_band")
        # one reduction instead of an elementwise isfinite pass: a sum is finite iff no NaN/inf
        # (float32 overflow needs fluxes ~1e34, itself a broken file)
        if not torch.isfinite(flux.sum()):
            raise InvalidDataError("flux contains NaN or inf; mask bad pixels first (Image.validate)",
                                   field="image_array")
        c = self.config.crop_size
        if c > flux.shape[-1] or c > flux.shape[-2]:
            raise InvalidDataError(f"crop_size {c} larger than the images {tuple(flux.shape[-2:])}",
                                   field="image_array")
        if ivar is not None:
            ivar = torch.as_tensor(ivar, device=flux.device)
            if ivar.shape != flux.shape:
                raise InvalidDataError(f"ivar shape {tuple(ivar.shape)} != flux shape {tuple(flux.shape)}",
                                       field="image_ivar")
            if torch.isnan(ivar).any() or (ivar < 0).any():
                raise InvalidDataError("ivar has NaN or negative values", field="image_ivar")
        return flux, bands, ivar, physical

    # -- drawing -----------------------------------------------------------------------------------
    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> AugmentParams:
        """Draw the parameters for a batch of shape (N, B, H, W) (switched-off steps get identities)."""
        cfg = self.config
        n, b, h, w = shape
        gen_device = generator.device if generator is not None else (device or "cpu")

        def uniform(lo, hi, *size):
            return lo + (hi - lo) * torch.rand(*size, generator=generator, device=gen_device)

        angle = uniform(0.0, 2 * math.pi, n) if cfg.rotate else torch.zeros(n, device=gen_device)
        scale = uniform(*cfg.scale_range, n)
        shift = uniform(-cfg.max_shift, cfg.max_shift, n, 2)
        k90 = (torch.randint(0, 4, (n,), generator=generator, device=gen_device) if cfg.rot90
               else torch.zeros(n, dtype=torch.long, device=gen_device))
        flip = (torch.rand(n, generator=generator, device=gen_device) < 0.5) if cfg.flip \
            else torch.zeros(n, dtype=torch.bool, device=gen_device)
        ebv = uniform(*cfg.ebv_range, n)
        psf = uniform(*cfg.psf_fwhm_range, n, b)
        u = torch.rand(n, b, generator=generator, device=gen_device)
        c = cfg.crop_size  # noise is added to the view, so drawn at its size (nothing when off)
        noise = (_standard_normal((n, b, c, c), generator, gen_device) if cfg.noise
                 else torch.zeros(n, b, 0, 0, device=gen_device))
        gain = torch.exp(cfg.gain_jitter * torch.randn(n, b, generator=generator, device=gen_device))
        params = AugmentParams(angle, scale, shift, k90, flip, ebv, psf, u, noise, gain)
        return params.to(device) if device is not None else params

    def _noise_targets(self, u: torch.Tensor, bands: Sequence[str], sigma_in: torch.Tensor) -> torch.Tensor:
        ranges = self.config.noise_sigma_range
        if ranges is None:
            lo, hi = self.config.noise_scale_range
            return sigma_in * (lo + (hi - lo) * u)
        missing = [x for x in bands if x not in ranges]
        if missing:
            raise ValueError(f"noise_sigma_range has no range for bands {missing}")
        lo = torch.tensor([ranges[x][0] for x in bands], dtype=u.dtype, device=u.device)
        hi = torch.tensor([ranges[x][1] for x in bands], dtype=u.dtype, device=u.device)
        return lo + (hi - lo) * u

    # -- applying ----------------------------------------------------------------------------------
    def apply(self, flux: torch.Tensor, params: AugmentParams, bands: Sequence[str],
              ivar: torch.Tensor | None = None, psf_fwhm=None, pixel_scale: float = 0.262) -> torch.Tensor:
        """Apply given parameters (same row order as flux); see the module docstring for the steps."""
        cfg = self.config
        flux, bands, ivar, physical = self._prepare(flux, bands, ivar)
        n, b, h, w = flux.shape
        c = cfg.crop_size
        if cfg.noise and tuple(params.noise.shape) != (n, b, c, c):
            raise ValueError(f"params drawn for {tuple(params.noise.shape[:2])} views of "
                             f"{tuple(params.noise.shape[2:])} pixels, flux is {tuple(flux.shape)} -> {c} px")
        if not (math.isfinite(pixel_scale) and pixel_scale > 0):
            raise InvalidDataError(f"pixel scale must be positive arcsec/pixel, got {pixel_scale}",
                                   field="image_scale")
        params = params.to(flux.device)
        scale = params.scale.to(flux)
        psf_now = _per_sample_band(psf_fwhm, n, b, "image_psf_fwhm", flux.device)
        sigma_in = estimate_noise_sigma(flux, ivar, max_pixels=NOISE_ESTIMATE_PIXELS) if cfg.noise else None

        # 1. geometry: one resampling onto the crop plus the blur's margin
        blur_native = None
        margin = 0
        if physical and cfg.blur and psf_now is not None:
            blur_native = blur_sigma_pixels(psf_now.to(flux), params.psf_fwhm.to(flux), pixel_scale)
            blur_view = blur_native * scale.view(-1, 1)  # the view magnifies the PSF by s
            margin = blur_radius(blur_view)
        grid = view_grid((h, w), params.angle.to(flux), scale, params.shift.to(flux), c + 2 * margin,
                         params.k90, params.flip)
        view = _resample(flux, grid)
        # 2. PSF blur of the view, valid region only
        if margin:
            view, _ = gaussian_blur(view, blur_view, out_size=c)
        # 3. flux conservation (1/s^2), dust and band gains are per-band factors: one multiply,
        # together with the noise
        band_factor = (reddening_factor(bands, params.ebv.to(flux), cfg.filter_system)
                       if physical and cfg.redden else torch.ones(n, b, dtype=flux.dtype, device=flux.device))
        band_factor = band_factor / scale.view(-1, 1) ** 2
        if cfg.gain_jitter > 0:
            band_factor = band_factor * params.gain.to(flux)
        if not cfg.noise:
            return view * band_factor[:, :, None, None]
        # 4. noise: the view's own noise, carried from the input through every step, topped up to target
        crop_grid = grid[:, margin:margin + c, margin:margin + c]  # the same points whatever the margin
        sigma_view = sigma_in * band_factor * _view_noise_factor(crop_grid, (h, w), blur_native)
        target = self._noise_targets(params.noise_target.to(flux), bands, sigma_in)
        if cfg.gain_jitter > 0:
            target = target * params.gain.to(flux)
        extra = (target ** 2 - sigma_view ** 2).clamp(min=0).sqrt()
        return torch.addcmul(view * band_factor[:, :, None, None], params.noise.to(flux),
                             extra[:, :, None, None])

    def forward(self, flux: torch.Tensor, bands: Sequence[str] | None = None,
                ivar: torch.Tensor | None = None, psf_fwhm=None, pixel_scale: float = 0.262,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw parameters and return augmented flux (N, B, crop, crop).

        flux: (N, B, H, W) float flux, or (N, H, W, 3) uint8 RGB (then physical steps are off and the
        output is float 0-255 (N, 3, crop, crop)). bands: names, one per band (default R, G, B for
        uint8). ivar: (N, B, H, W) or None. psf_fwhm: arcsec, scalar / (B,) / (N, B), NaN = unknown,
        None = blur off. pixel_scale: arcsec per pixel (0.262 for Legacy Surveys).
        generator: torch.Generator for reproducible draws (use one on flux's device for speed).
        """
        if bands is None and not (isinstance(flux, torch.Tensor) and flux.dtype == torch.uint8):
            raise ValueError("band names are required for flux input")
        if isinstance(flux, np.ndarray):
            flux = torch.from_numpy(np.ascontiguousarray(flux))
        shape = (flux.shape[0], 3, flux.shape[1], flux.shape[2]) if flux.dtype == torch.uint8 and \
            flux.ndim == 4 else tuple(flux.shape)
        if len(shape) != 4:
            raise InvalidDataError(f"expected (N, B, H, W) flux, got shape {tuple(flux.shape)}",
                                   field="image_array")
        params = self.sample_params(shape, generator=generator,
                                    device=None if generator is not None else flux.device)
        return self.apply(flux, params, bands, ivar=ivar, psf_fwhm=psf_fwhm, pixel_scale=pixel_scale)
