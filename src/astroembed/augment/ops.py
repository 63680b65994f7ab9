"""The single image augmentations, batched and device-agnostic: each usable on its own.

Reddening (:func:`redden`), Gaussian PSF blur (:func:`gaussian_blur`, :func:`blur_to_fwhm`), noise
(:func:`estimate_noise_sigma`, :func:`add_noise`), the geometric resampling (:func:`view_grid`,
:func:`affine_crop`, with :func:`bilinear_noise_factor` for the noise it removes) and the exact dihedral
turns (:func:`dihedral`). :class:`~astroembed.augment.image.ImageAugmenter` fuses them into one pass per
batch; the physics of each step is described there.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from astroembed.augment.extinction import extinction_coefficients
from astroembed.preprocess.image import median_lastdim, robust_sigma, strided_pixels

__all__ = [
    "FWHM_PER_SIGMA",
    "MATMUL_BLUR_MAX_SIZE",
    "add_noise",
    "affine_crop",
    "bilinear_noise_factor",
    "blur_radius",
    "blur_sigma_pixels",
    "blur_to_fwhm",
    "dihedral",
    "estimate_noise_sigma",
    "gaussian_blur",
    "gaussian_kernels",
    "redden",
    "reddening_factor",
    "resample",
    "view_grid",
]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548 for a Gaussian



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


def gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
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
# on CPU, BLAS runs the (H x H) products faster than PyTorch's depthwise convolution runs its
# (2r + 1)-tap kernels at survey cutout sizes (64-128 px), and falls behind near 160 px (BENCHMARKS.md,
# augmentation).
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
    k = gaussian_kernels(sigma[active], radius)  # (M, K)
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


def resample(flux: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
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
    return resample(flux, grid) * (1.0 / scale.to(flux) ** 2).view(-1, 1, 1, 1)  # total flux unchanged


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
