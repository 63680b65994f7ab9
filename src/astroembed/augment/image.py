"""Batched astrophysical image augmentations (Hayat, Stein et al. 2021), one call per batch on CPU or GPU.

A view of a galaxy is made in the order light travels and is recorded, so each step has a physical
meaning and the noise bookkeeping is exact for white pixel noise:

1. Galactic reddening: flux_b *= 10^(-0.4 R_b dE), dE drawn (``extinction.py`` for R_b).
2. PSF blur from the image's FWHM to a drawn target FWHM per band: Gaussian of
   sigma_aug = sqrt(sigma_target^2 - sigma_now^2) pixels (no-op where target <= now); all samples and
   bands in one grouped (depthwise) convolution.
3. Gaussian noise up to a drawn target level: adds sqrt(target^2 - now^2), where "now" is the input
   noise (median 1/sqrt(ivar), else 1.4826 * MAD) carried through steps 1-2 exactly (reddening scales
   it, a blur kernel k scales white noise by sqrt(sum k^2)).
4. One affine warp per batch, rotation by any angle, size rescaling by s and a jitter of the crop
   centre, sampled straight into the crop_size output (bilinear, like the scikit-image reference).
   Total flux is conserved: the resampled image is multiplied by 1/s^2, so a galaxy made s times
   larger keeps its magnitude (surface brightness drops by s^2).
5. Random 90-degree turns and flips, exact index permutations.

Steps 1-3 are a new *observation* on the native pixel grid; 4-5 a change of viewpoint of it. So the
PSF and noise targets refer to native pixels: after a rescale by s the PSF is s times the target in
output pixels and the noise is that of the resampled observation (bilinear resampling smooths pixel
noise a little, as in every resampling pipeline).

RGB 8-bit cutouts (no ivar, PSF or calibrated bands) get only geometric + noise: pass
``physical=False`` in the config, or feed uint8 (N, H, W, 3) input, which turns it off by itself.
Blur is also skipped where the PSF FWHM is unknown (argument None or NaN entries).

Parameters are drawn by :meth:`ImageAugmenter.sample_params` into an :class:`AugmentParams` (noise
field included), so a batch can be replayed, sliced per sample, or inspected by tests.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from astroembed.augment.extinction import extinction_coefficients
from astroembed.augment.preprocess import RGB_BANDS, robust_sigma
from astroembed.data.records import InvalidDataError

__all__ = [
    "ImageAugmentConfig",
    "AugmentParams",
    "ImageAugmenter",
    "redden",
    "blur_to_fwhm",
    "estimate_noise_sigma",
    "add_noise",
    "affine_crop",
    "dihedral",
    "FWHM_PER_SIGMA",
]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548 for a Gaussian


# ---------------------------------------------------------------------------------------------------
# Configuration and drawn parameters
# ---------------------------------------------------------------------------------------------------

@dataclass
class ImageAugmentConfig:
    """Ranges and switches of the image augmentations (plain data; to_dict/from_dict for JSON).

    Geometry: ``rotate`` (uniform angle in [0, 360) deg), ``rot90`` and ``flip`` (exact), ``max_shift``
    (crop-centre jitter, uniform in +-max_shift native pixels per axis; 0 = off), ``scale_range``
    (uniform size factor s; (1, 1) = off), ``crop_size`` (output side in pixels).
    Physics (only with ``physical``): ``redden`` with dE(B-V) uniform in ``ebv_range`` (negative =
    de-reddening) and plain band names looked up in ``filter_system``; ``blur`` to a target FWHM
    uniform in ``psf_fwhm_range`` arcsec, drawn per band.
    Colour (any input, off by default): ``gain_jitter`` multiplies each band by exp(gain_jitter * N(0, 1)),
    drawn per sample and band: the 8-bit RGB stand-in for reddening, which needs fluxes in known bands.
    Noise (also for RGB): target sigma = u * input sigma with u uniform in ``noise_scale_range``, or,
    when ``noise_sigma_range`` maps every band to (lo, hi) in flux units, uniform in that range.
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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become lists)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        if out["noise_sigma_range"] is not None:
            out["noise_sigma_range"] = {b: list(r) for b, r in out["noise_sigma_range"].items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ImageAugmentConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ImageAugmentConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**dict(data))


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
    noise (N, B, H, W) standard normal field; gain (N, B) multiplicative band gains (1 when off).
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

def redden(flux: torch.Tensor, bands: Sequence[str], ebv: torch.Tensor,
           filter_system: str = "decam") -> tuple[torch.Tensor, torch.Tensor]:
    """Apply dE(B-V) per sample: flux_b * 10^(-0.4 R_b dE). Returns (flux, factor (N, B))."""
    r_b = torch.tensor(extinction_coefficients(bands, filter_system), dtype=flux.dtype,
                       device=flux.device)
    factor = torch.pow(10.0, -0.4 * ebv.to(flux).view(-1, 1) * r_b.view(1, -1))
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


def blur_to_fwhm(flux: torch.Tensor, fwhm_now: torch.Tensor, fwhm_target: torch.Tensor,
                 pixel_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Convolve each (sample, band) so its Gaussian-equivalent PSF FWHM becomes the target.

    fwhm_now, fwhm_target: (N, B) arcsec; NaN in fwhm_now (unknown PSF) or target <= now -> unchanged.
    Returns (blurred flux, white-noise factor (N, B) = sqrt(sum k^2) of each 2-D kernel).
    One separable depthwise convolution with reflect padding serves the whole batch; kornia's
    gaussian_blur2d would also do it but does not give the kernel (needed for the noise factor) nor
    accept sigma = 0 for the no-op rows.
    """
    n, b, h, w = flux.shape
    to_pix = 1.0 / (FWHM_PER_SIGMA * pixel_scale)
    s_now = fwhm_now.to(flux) * to_pix
    s_tgt = fwhm_target.to(flux) * to_pix
    var = torch.where(torch.isfinite(s_now), s_tgt ** 2 - s_now ** 2, torch.zeros_like(s_now))
    sigma = var.clamp(min=0).sqrt().reshape(-1)
    ones = torch.ones(n, b, dtype=flux.dtype, device=flux.device)
    s_max = float(sigma.max()) if sigma.numel() else 0.0
    if s_max < 1e-3:
        return flux, ones
    radius = min(int(math.ceil(4.0 * s_max)), min(h, w) - 1)  # reflect padding needs radius < size
    # only (sample, band) rows that need blurring go through the convolution (the others are copied)
    active = torch.nonzero(sigma >= 1e-3).squeeze(1)
    m = active.numel()
    k = _gaussian_kernels(sigma[active], radius)  # (M, K)
    x = F.pad(flux.reshape(n * b, h, w)[active].unsqueeze(0), (radius,) * 4, mode="reflect")
    x = F.conv2d(x, k.view(m, 1, -1, 1), groups=m)
    x = F.conv2d(x, k.view(m, 1, 1, -1), groups=m)
    out = flux.reshape(n * b, h, w).index_copy(0, active, x[0])
    noise_factor = ones.reshape(-1).index_copy(0, active, (k ** 2).sum(dim=1))
    # (for a separable kernel sqrt(sum of 2-D squares) = the 1-D sum of squares)
    return out.view(n, b, h, w), noise_factor.view(n, b)


def estimate_noise_sigma(flux: torch.Tensor, ivar: torch.Tensor | None = None,
                         max_pixels: int | None = None) -> torch.Tensor:
    """Per-sample, per-band pixel noise sigma (N, B).

    With ivar: median of 1/sqrt(ivar) over pixels with ivar > 0 (documented masking: ivar = 0 is no
    information). Without, or where every ivar is 0: 1.4826 * MAD of the pixels, robust to a galaxy
    covering less than half of the cutout (it overestimates sigma for larger ones); ``max_pixels``
    as in :func:`~astroembed.augment.preprocess.robust_sigma`.
    """
    if ivar is None:
        return robust_sigma(flux, max_pixels)
    ivar = ivar.to(flux)
    sig = torch.where(ivar > 0, ivar.clamp(min=1e-30).rsqrt(), torch.full_like(ivar, float("nan")))
    from_ivar = sig.reshape(sig.shape[0], sig.shape[1], -1).nanmedian(dim=-1).values
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


def affine_crop(flux: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                crop_size: int) -> torch.Tensor:
    """Rotate by ``angle`` (rad), magnify by ``scale`` and crop crop_size pixels around the shifted centre.

    One bilinear grid_sample for the whole batch. A feature at offset q from the crop centre
    (image centre + shift, native pixels, (x, y) = (column, row)) lands at s R(angle) q from the
    output centre. The result is multiplied by 1/s^2 so total flux is unchanged. With angle 0,
    scale 1 and shift 0 this is exactly the centre crop.
    """
    n, _, h, w = flux.shape
    cos, sin = torch.cos(angle).to(flux), torch.sin(angle).to(flux)
    inv_s = 1.0 / scale.to(flux)
    # input offset = shift + (1/s) R(-angle) output offset, then into grid_sample's [-1, 1] units
    # (align_corners=False: a pixel offset d from the centre is 2 d / size).
    m = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) * inv_s.view(-1, 1, 1)
    d_in = torch.tensor([w / 2.0, h / 2.0], dtype=flux.dtype, device=flux.device)
    theta_lin = m * (crop_size / 2.0) / d_in.view(1, 2, 1)
    theta_t = shift.to(flux) / d_in.view(1, 2)
    theta = torch.cat([theta_lin, theta_t.unsqueeze(-1)], dim=-1)
    grid = F.affine_grid(theta, [n, flux.shape[1], crop_size, crop_size], align_corners=False)
    # reflection: a rotated crop's corners can reach past the input (96 -> 64 at s = 0.9 and a 4 px
    # shift reaches 54 px from the centre); mirrored sky keeps them noise-like instead of black.
    out = F.grid_sample(flux, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out * (inv_s ** 2).view(-1, 1, 1, 1)


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
    :func:`astroembed.augment.preprocess.preprocess`. No learnable state; nn.Module so it moves with
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
        noise = torch.randn(n, b, h, w, generator=generator, device=gen_device)
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
        n, b = flux.shape[:2]
        if params.noise.shape != flux.shape:
            raise ValueError(f"params drawn for shape {tuple(params.noise.shape)}, flux is {tuple(flux.shape)}")
        if not (math.isfinite(pixel_scale) and pixel_scale > 0):
            raise InvalidDataError(f"pixel scale must be positive arcsec/pixel, got {pixel_scale}",
                                   field="image_scale")
        params = params.to(flux.device)
        psf_now = _per_sample_band(psf_fwhm, n, b, "image_psf_fwhm", flux.device)
        sigma_in = estimate_noise_sigma(flux, ivar, max_pixels=4096) if cfg.noise else None
        sigma_now = sigma_in

        if physical and cfg.redden:
            flux, factor = redden(flux, bands, params.ebv, cfg.filter_system)
            sigma_now = sigma_now * factor if sigma_now is not None else None
        if physical and cfg.blur and psf_now is not None:
            flux, factor = blur_to_fwhm(flux, psf_now, params.psf_fwhm, pixel_scale)
            sigma_now = sigma_now * factor if sigma_now is not None else None
        if cfg.noise:
            target = self._noise_targets(params.noise_target, bands, sigma_in)
            flux = add_noise(flux, sigma_now, target, noise=params.noise)
        if cfg.gain_jitter > 0:
            flux = flux * params.gain.view(n, b, 1, 1)
        flux = affine_crop(flux, params.angle, params.scale, params.shift, cfg.crop_size)
        return dihedral(flux, params.k90, params.flip)

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
