"""Batched image augmentations vs a per-image numpy/scikit-image reference (the way Stein et al.'s
ssl-legacysurvey code augments: one image at a time with skimage.transform.rotate/rescale and
scipy.ndimage.gaussian_filter).

Both pipelines do the same steps on the same images: reddening, PSF blur to a drawn target, noise to a
drawn target, rotation by any angle, rescale, jitter crop, 90-degree turn and flip.

    python bench/bench_augment.py --n-images 512 --size 96 --crop 64 [--device cuda]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage.transform import rescale, rotate

from astroembed.augment.extinction import extinction_coefficients
from astroembed.augment.image import ImageAugmentConfig, ImageAugmenter
from astroembed.runtime import keep_freed_memory

BANDS = ["g", "r", "z"]
PIX = 0.262


def make_images(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Elliptical exponential discs on noisy sky, nanomaggy-like; returns flux and PSF FWHM (arcsec)."""
    rng = np.random.default_rng(seed)
    y, x = np.indices((size, size)) - (size - 1) / 2
    q = rng.uniform(0.3, 1.0, n)[:, None, None]
    phi = rng.uniform(0, np.pi, n)[:, None, None]
    xr = x * np.cos(phi) + y * np.sin(phi)
    yr = (-x * np.sin(phi) + y * np.cos(phi)) / q
    r = np.sqrt(xr ** 2 + yr ** 2)
    disc = np.exp(-r / rng.uniform(2, 8, n)[:, None, None])
    colours = rng.uniform(0.02, 0.2, (n, 3))
    flux = disc[:, None] * colours[:, :, None, None] + rng.normal(0, 0.005, (n, 3, size, size))
    psf = rng.uniform(0.9, 1.4, (n, 3))
    return flux.astype(np.float32), psf.astype(np.float32)


def reference_pipeline(flux: np.ndarray, psf: np.ndarray, cfg: ImageAugmentConfig, rng) -> np.ndarray:
    """One image at a time, numpy/scipy/scikit-image."""
    r_b = np.array(extinction_coefficients(BANDS))
    out = np.empty((len(flux), 3, cfg.crop_size, cfg.crop_size), np.float32)
    for i, img in enumerate(flux):
        img = img * 10 ** (-0.4 * r_b * rng.uniform(*cfg.ebv_range))[:, None, None]
        sigma_now = 1.4826 * np.median(np.abs(img - np.median(img, axis=(1, 2), keepdims=True)), axis=(1, 2))
        target_noise = sigma_now * rng.uniform(*cfg.noise_scale_range, 3)
        planes = []
        for b in range(3):
            s_now = psf[i, b] / 2.3548 / PIX
            s_tgt = rng.uniform(*cfg.psf_fwhm_range) / 2.3548 / PIX
            s_aug = math.sqrt(max(s_tgt ** 2 - s_now ** 2, 0.0))
            plane = gaussian_filter(img[b], s_aug, mode="reflect") if s_aug > 0 else img[b]
            planes.append(plane)
        img = np.stack(planes)
        added = np.sqrt(np.maximum(target_noise ** 2 - sigma_now ** 2, 0))[:, None, None]
        img = img + rng.normal(size=img.shape) * added
        hwc = np.moveaxis(img, 0, -1)
        hwc = rotate(hwc, rng.uniform(0, 360), order=1, mode="reflect")
        s = rng.uniform(*cfg.scale_range)
        hwc = rescale(hwc, s, order=1, channel_axis=-1, mode="reflect", anti_aliasing=False) / s ** 2
        h = hwc.shape[0]
        dx, dy = rng.integers(-int(cfg.max_shift), int(cfg.max_shift) + 1, 2)
        top = (h - cfg.crop_size) // 2 + dy
        left = (h - cfg.crop_size) // 2 + dx
        top, left = np.clip([top, left], 0, h - cfg.crop_size)
        hwc = hwc[top:top + cfg.crop_size, left:left + cfg.crop_size]
        hwc = np.rot90(hwc, rng.integers(0, 4))
        if rng.random() < 0.5:
            hwc = hwc[:, ::-1]
        out[i] = np.moveaxis(hwc, -1, 0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-images", type=int, default=512)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256, help="images per batched call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                        help="comma-separated torch thread counts to time the batched pipeline with")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds; each round times every pipeline once, in turn; best of the rounds")
    args = parser.parse_args()
    # Both sides of every comparison run with the allocator setting the package uses (runtime.py);
    # without it CPU figures mostly measure the kernel's page faults.
    print(f"keep_freed_memory: {keep_freed_memory()}")

    flux, psf = make_images(args.n_images, args.size)
    cfg = ImageAugmentConfig(crop_size=args.crop)
    aug = ImageAugmenter(cfg)
    device = torch.device(args.device)
    flux_t = torch.from_numpy(flux).to(device)
    psf_t = torch.from_numpy(psf).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    threads = [int(t) for t in args.threads.split(",")]

    def batched():
        outs = [aug(flux_t[i:i + args.batch], BANDS, psf_fwhm=psf_t[i:i + args.batch], generator=gen)
                for i in range(0, len(flux_t), args.batch)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        return outs

    def timed(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    batched()  # warm-up (allocator, kernels)
    # Rounds alternate the pipelines so that a slow spell of a shared machine hits all of them.
    t_ours = {t: math.inf for t in threads}
    t_ref = math.inf
    for _ in range(args.repeats):
        for t in threads:
            torch.set_num_threads(t)
            t_ours[t] = min(t_ours[t], timed(batched))
        t_ref = min(t_ref, timed(lambda: reference_pipeline(flux, psf, cfg, np.random.default_rng(0))))

    n = args.n_images
    print(f"images: {n} x 3x{args.size}x{args.size} -> {args.crop}x{args.crop}, device {device}, "
          f"best of {args.repeats} alternating rounds")
    print(f"numpy/skimage per-image reference : {n / t_ref:10.1f} images/s  ({t_ref:.3f} s, one process)")
    for t in threads:
        print(f"astroembed batched, {t} torch thread{'s' if t > 1 else ' '}: {n / t_ours[t]:10.1f} images/s  "
              f"({t_ours[t]:.3f} s, {args.batch}/call)  speed-up {t_ref / t_ours[t]:.1f}x")


if __name__ == "__main__":
    main()
