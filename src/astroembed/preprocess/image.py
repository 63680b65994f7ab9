"""Raw flux -> network input, the one code path shared by training, embedding and the web app.

Survey images span four decades in surface brightness, so a network needs a range compression that
is linear in the noise (faint features keep their shape) and logarithmic in bright cores. We use the
same arcsinh stretch, band by band, as the Legacy Surveys sky viewer:

    y_b = arcsinh(q * s_b * flux_b) / sqrt(q)

with q = 20 and, for Legacy Surveys g, r, z nanomaggies, s = (6.0, 3.4, 2.2): the per-band scales and
softening of ``sdss_rgb`` / ``dr2_rgb`` in legacysurvey/imagine ``map/views.py`` (Dustin Lang's viewer
code, also the colour mapping of legacypipe JPEGs and AstroCLIP's ``dr2_rgb``). The viewer applies the
arcsinh to the band-averaged intensity to keep colours (Lupton et al. 2004); a network wants each band
compressed on its own, so :func:`preprocess` stretches per band and :func:`render_rgb` (for people)
keeps the viewer's joint mapping.

For any other band set, :meth:`PreprocessConfig.fit` sets s_b from the pixel noise of a sample:
s_b = noise_level / (q * sigma_b), sigma_b the median over images of 1.4826 * MAD. noise_level = 0.25
reproduces the viewer's choice on real DR9 data (q * s_b * sigma_b is 0.2-0.4 for g, r, z there), so
fitted and built-in scales put the noise at the same place on the stretch.

uint8 RGB cutouts (JPEGs, e.g. Galaxy Zoo) use mode "rgb": (N, H, W, 3) uint8 -> (N, 3, H, W) in
[0, 1]. Float (N, 3, H, W) arrays holding 0-255 values (how :class:`astroembed.data.records.Image`
stores RGB cutouts) are accepted too.

The config is plain data (JSON via to_dict/from_dict) and is saved beside exported models, so an
embedding run preprocesses exactly as training did.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from astroembed.config import Config
from astroembed.data.records import InvalidDataError

__all__ = [
    "LS_GRZ_SCALES",
    "LS_SOFTENING",
    "PreprocessConfig",
    "preprocess",
    "centre_crop",
    "standardize",
    "render_rgb",
    "robust_sigma",
    "median_lastdim",
]

# legacysurvey/imagine map/views.py, dr2_rgb(): sdss_rgb(..., scales=dict(g=(2, 6.0), r=(1, 3.4),
# z=(0, 2.2)), m=0.03) with Q = 20 inside sdss_rgb. The tuple's first entry is the RGB plane.
LS_GRZ_SCALES: dict[str, float] = {"g": 6.0, "r": 3.4, "z": 2.2}
LS_RGB_PLANES: dict[str, int] = {"g": 2, "r": 1, "z": 0}
LS_SOFTENING: float = 20.0
LS_BLACK_LEVEL: float = 0.03  # sdss_rgb's `m`: lifts the sky so noise is visible, display only

_MODES = ("arcsinh", "rgb")
# Default geometry for 8-bit colour cutouts: Galaxy Zoo / SDSS cutouts frame the galaxy in the central
# half, so keep that half, resample it to 96 px, and train on 64 px jitter-crops (Walmsley et al. and
# Hayat et al. use comparable crops).
RGB_DEFAULT_INPUT_SIZE = 96
RGB_DEFAULT_CROP = 64
RGB_BANDS = ("R", "G", "B")


def median_lastdim(x: torch.Tensor) -> torch.Tensor:
    """Median over the last dimension (the lower of the two middle values for an even count, as
    torch.median), NaN-free input.

    On CPU through numpy's introselect (np.partition), faster than torch.median's per-row sort where
    the noise estimate was a large share of the augmentation time (bench/bench_augment.py). Elsewhere
    (GPU) torch.median.
    """
    if x.device.type != "cpu" or x.requires_grad or x.dtype not in (torch.float32, torch.float64):
        return x.median(dim=-1).values
    kth = (x.shape[-1] - 1) // 2
    arr = np.partition(x.detach().contiguous().numpy(), kth, axis=-1)[..., kth]
    return torch.from_numpy(np.ascontiguousarray(arr))


def strided_pixels(images: torch.Tensor, max_pixels: int | None = None) -> torch.Tensor:
    """(N, B, H, W) -> (N, B, P): all pixels, or every k-th one so that P <= max_pixels."""
    flat = images.reshape(images.shape[0], images.shape[1], -1)
    if max_pixels is not None and flat.shape[-1] > max_pixels:
        flat = flat[..., ::-(-flat.shape[-1] // max_pixels)]
    return flat


def robust_sigma(flux: torch.Tensor, max_pixels: int | None = None) -> torch.Tensor:
    """Per-image, per-band Gaussian-equivalent sigma from the median absolute deviation.

    flux: (N, B, H, W) -> (N, B). 1.4826 * MAD equals the standard deviation for Gaussian noise and
    ignores a galaxy covering less than about half the pixels. ``max_pixels`` uses an evenly strided
    subset (1024 pixels give ~3.5 % scatter on sigma, 4096 ~1.7 %).
    """
    flat = strided_pixels(flux, max_pixels)
    med = median_lastdim(flat).unsqueeze(-1)
    return 1.4826 * median_lastdim((flat - med).abs())


@dataclass
class PreprocessConfig(Config):
    """How raw cutouts become network input.

    mode: "arcsinh" (survey flux) or "rgb" (8-bit colour cutouts).
    band_scales: s_b per band name for the arcsinh stretch (default: Legacy Surveys viewer g, r, z).
    softening: q in arcsinh(q * s * flux) / sqrt(q).
    crop_size: side of the centre crop in pixels; None keeps the full frame.
    input_crop, input_size: optional standardisation of the stored cutouts before anything else
        (:func:`standardize`): centre crop to ``input_crop`` pixels, then resample to ``input_size``
        pixels. Meant for colour cutouts framed wider than the galaxy (Galaxy Zoo's 424 px JPEGs);
        resampling keeps surface brightness (pixel values), so use it on flux images only knowingly.
    """

    mode: str = "arcsinh"
    band_scales: dict[str, float] = field(default_factory=lambda: dict(LS_GRZ_SCALES))
    softening: float = LS_SOFTENING
    crop_size: int | None = None
    input_crop: int | None = None
    input_size: int | None = None

    def __post_init__(self):
        if self.mode not in _MODES:
            raise ValueError(f"PreprocessConfig.mode must be one of {_MODES}, got {self.mode!r}")
        self.band_scales = {str(k): float(v) for k, v in dict(self.band_scales).items()}
        for band, scale in self.band_scales.items():
            if not (math.isfinite(scale) and scale > 0):
                raise ValueError(f"band scale for {band!r} must be positive and finite, got {scale}")
        if not (math.isfinite(self.softening) and self.softening > 0):
            raise ValueError(f"softening must be positive, got {self.softening}")
        if self.crop_size is not None:
            self.crop_size = int(self.crop_size)
            if self.crop_size < 1:
                raise ValueError(f"crop_size must be >= 1 or None, got {self.crop_size}")
        for name in ("input_crop", "input_size"):
            value = getattr(self, name)
            if value is not None:
                if int(value) < 1:
                    raise ValueError(f"{name} must be >= 1 or None, got {value}")
                setattr(self, name, int(value))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PreprocessConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def for_rgb(cls, side: int) -> "PreprocessConfig":
        """The default preprocessing of 8-bit colour cutouts ``side`` pixels wide: the central half,
        resampled to ``RGB_DEFAULT_INPUT_SIZE`` pixels, cropped to ``RGB_DEFAULT_CROP`` (see the constants).
        Used by image pretraining on a JPEG folder and by the supervised baseline of ``evaluate``, so the
        network trained from scratch sees the frame the pretrained one saw."""
        return cls(mode="rgb", input_crop=int(side) // 2, input_size=RGB_DEFAULT_INPUT_SIZE,
                   crop_size=RGB_DEFAULT_CROP)

    @classmethod
    def fit(cls, flux_sample: torch.Tensor | np.ndarray, bands: Sequence[str], *,
            noise_level: float = 0.25, softening: float = LS_SOFTENING,
            crop_size: int | None = None) -> "PreprocessConfig":
        """Scales for an arbitrary band set from a sample of raw flux cutouts (N, B, H, W).

        s_b = noise_level / (softening * sigma_b), sigma_b the median over the sample of the
        per-image robust pixel sigma (see module docstring for why 0.25).
        """
        flux = _as_flux_tensor(flux_sample, bands)
        sigma = robust_sigma(flux.float()).median(dim=0).values
        scales = {}
        for band, s in zip(bands, sigma.tolist()):
            if not (math.isfinite(s) and s > 0):
                raise InvalidDataError(f"cannot fit a scale: robust sigma of band {band!r} is {s} "
                                       f"(constant or empty images?)", field="image_array")
            scales[str(band)] = noise_level / (softening * s)
        return cls(mode="arcsinh", band_scales=scales, softening=softening, crop_size=crop_size)


def _as_flux_tensor(flux, bands: Sequence[str] | None) -> torch.Tensor:
    if isinstance(flux, np.ndarray):
        flux = torch.from_numpy(np.ascontiguousarray(flux))
    if not isinstance(flux, torch.Tensor):
        raise InvalidDataError(f"expected a torch.Tensor or numpy array, got {type(flux).__name__}",
                               field="image_array")
    if flux.ndim != 4:
        raise InvalidDataError(f"expected (N, B, H, W) flux, got shape {tuple(flux.shape)}",
                               field="image_array")
    if bands is not None and len(bands) != flux.shape[1]:
        raise InvalidDataError(f"{len(bands)} band names {list(bands)} for {flux.shape[1]} bands",
                               field="image_band")
    # one reduction first (a sum is finite iff no NaN/inf, short of float overflow), the elementwise
    # test only when it is not: preprocessing is a measurable part of embedding a catalogue
    if flux.is_floating_point() and not torch.isfinite(flux.sum()) and torch.isnan(flux).any():
        raise InvalidDataError("flux contains NaN; mask bad pixels when reading (Image.validate)",
                               field="image_array")
    return flux


def centre_crop(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Centre crop of the last two axes to size x size (no-op for None or the full size)."""
    if size is None:
        return images
    h, w = images.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"crop_size {size} is larger than the image ({h}x{w})")
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


def standardize(images: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """Stored cutouts (N, B, H, W) -> the frame the model was trained on: centre crop to
    ``config.input_crop``, then bilinear resampling with antialiasing to ``config.input_size``.

    Applied by the training data loader and by ``astroembed.load(...).embed`` alike, so both see the
    same pixels. A no-op when neither is set.
    """
    images = centre_crop(images, config.input_crop)
    size = config.input_size
    if size is not None and tuple(images.shape[-2:]) != (size, size):
        dtype = images.dtype
        images = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear",
                                                 align_corners=False, antialias=True)
        if dtype == torch.uint8:
            images = images.round().clamp(0, 255).to(dtype)
    return images


def _rgb_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) or 0-255 float (N, 3, H, W) -> float (N, 3, H, W) in [0, 1]."""
    if images.ndim != 4:
        raise InvalidDataError(f"expected a batch of RGB images, got shape {tuple(images.shape)}",
                               field="image_array")
    if images.dtype == torch.uint8:
        if images.shape[-1] != 3:
            raise InvalidDataError(f"uint8 RGB must be (N, H, W, 3), got {tuple(images.shape)}",
                                   field="image_array")
        return images.permute(0, 3, 1, 2).float() / 255.0
    if images.shape[1] != 3:
        raise InvalidDataError(f"float RGB must be (N, 3, H, W) with 0-255 values, got "
                               f"{tuple(images.shape)}", field="image_array")
    if torch.isnan(images).any():
        raise InvalidDataError("RGB image contains NaN", field="image_array")
    return images.float() / 255.0


def preprocess(flux: torch.Tensor | np.ndarray, config: PreprocessConfig,
               bands: Sequence[str] | None = None) -> torch.Tensor:
    """Raw cutouts (N, B, H, W) -> float network input (N, B, crop, crop) on the input's device.

    "arcsinh" mode: per-band arcsinh(q * s_b * flux) / sqrt(q), s_b looked up by band name.
    "rgb" mode: uint8 (N, H, W, 3) or 0-255 float (N, 3, H, W) -> (N, 3, crop, crop) in [0, 1];
    ``bands`` is ignored.
    """
    if isinstance(flux, np.ndarray):
        flux = torch.from_numpy(np.ascontiguousarray(flux))
    if config.mode == "rgb":
        return centre_crop(_rgb_to_unit(flux), config.crop_size)
    if bands is None:
        raise ValueError("preprocess in 'arcsinh' mode needs the band names")
    flux = _as_flux_tensor(flux, bands)
    missing = [b for b in bands if b not in config.band_scales]
    if missing:
        raise ValueError(f"no arcsinh scale for bands {missing}; the config knows "
                         f"{sorted(config.band_scales)}. Use PreprocessConfig.fit(sample, bands).")
    flux = centre_crop(flux, config.crop_size).float()
    q = config.softening
    scale = torch.tensor([config.band_scales[b] for b in bands], dtype=flux.dtype, device=flux.device)
    out = flux * (q * scale).view(1, -1, 1, 1)
    if out.requires_grad or out.device.type != "cpu":
        return torch.asinh(out) / math.sqrt(q)
    return _asinh_cpu_(out, 1.0 / math.sqrt(q))


def _asinh_cpu_(x: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
    """factor * arcsinh(x), in place on a CPU tensor: twice as fast as torch.asinh, whose CPU kernel is
    scalar code and was the largest cost of embedding a catalogue after the forward pass
    (bench/bench_embed.py).

    asinh|x| = log1p(|x| + x^2 / (1 + sqrt(1 + x^2))), accurate near 0 (no cancellation), sign restored;
    |x| > 1e18 (where x^2 overflows float32) goes to torch.asinh. Within 4e-7 of float64 arcsinh.
    """
    a = x.abs()
    if a.numel() and float(a.max()) > 1e18:
        return torch.asinh(x, out=x).mul_(factor)
    s = a * a
    s.div_(s.add(1.0).sqrt_().add_(1.0)).add_(a).log1p_()
    return torch.mul(s.copysign_(x), factor, out=x)


def _pick_rgb_bands(bands: Sequence[str]) -> list[tuple[int, int]]:
    """(band index, RGB plane) pairs: g,r,z as the viewer does; otherwise blue..red spread evenly."""
    short = [str(b).split("_")[-1].split("-")[-1] for b in bands]
    if all(b in short for b in ("g", "r", "z")):
        return [(short.index(b), LS_RGB_PLANES[b]) for b in ("g", "r", "z")]
    n = len(bands)
    if n == 1:
        return [(0, 0), (0, 1), (0, 2)]
    idx = np.round(np.linspace(0, n - 1, 3)).astype(int)
    return [(int(idx[0]), 2), (int(idx[1]), 1), (int(idx[2]), 0)]  # bluest band -> blue plane


def render_rgb(flux: torch.Tensor | np.ndarray, bands: Sequence[str],
               config: PreprocessConfig | None = None) -> np.ndarray:
    """Colour pictures for people: (N, B, H, W) flux -> (N, H, W, 3) float in [0, 1].

    Bands R, G, B (or uint8 input) are shown as they are. Otherwise this is the Legacy Surveys
    viewer's ``sdss_rgb``: I = mean_b max(0, s_b flux_b + m); each plane = (s_b flux_b + m) *
    arcsinh(q I) / (sqrt(q) I), clipped to [0, 1] (the colour-preserving stretch of Lupton et al.
    2004). Scales come from ``config`` (default: the viewer's g, r, z scales).
    """
    if isinstance(flux, np.ndarray):
        flux = torch.from_numpy(np.ascontiguousarray(flux))
    if flux.dtype == torch.uint8 or tuple(bands) == RGB_BANDS:
        rgb = _rgb_to_unit(flux)
        return rgb.permute(0, 2, 3, 1).clamp(0, 1).cpu().numpy()
    config = config or PreprocessConfig()
    flux = _as_flux_tensor(flux, bands).float()
    pairs = _pick_rgb_bands(bands)
    missing = [bands[i] for i, _ in pairs if bands[i] not in config.band_scales]
    if missing:
        raise ValueError(f"no display scale for bands {missing}; pass PreprocessConfig.fit(...)")
    q, m = config.softening, LS_BLACK_LEVEL
    planes = {}
    for i, plane in pairs:
        planes.setdefault(plane, flux[:, i] * config.band_scales[bands[i]] + m)
    stacked = torch.stack([planes[p] for p in (0, 1, 2)], dim=-1)  # (N, H, W, 3) as R, G, B
    intensity = stacked.clamp(min=0).mean(dim=-1, keepdim=True)
    stretch = torch.asinh(q * intensity) / math.sqrt(q)
    intensity = intensity + (intensity == 0) * 1e-6
    return (stacked * stretch / intensity).clamp(0, 1).cpu().numpy()
