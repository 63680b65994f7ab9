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
from torch import nn

from astroembed.augment.ops import (bilinear_noise_factor, blur_radius, blur_sigma_pixels, estimate_noise_sigma,
                                    gaussian_blur, gaussian_kernels, reddening_factor, resample, view_grid)
from astroembed.preprocess.image import RGB_BANDS
from astroembed.config import Config
from astroembed.data.records import InvalidDataError

__all__ = ["ImageAugmentConfig", "AugmentParams", "ImageAugmenter"]


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
            k = gaussian_kernels(blur_native.reshape(-1), radius)
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
        view = resample(flux, grid)
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
