"""Catalogue embedding throughput against the bare model forward on in-memory preprocessed tensors.

    python bench/bench_embed.py [--n 2000] [--size 96] [--archs small_cnn resnet18] [--workers 0 1]
                                [--patch-deg 2] [--batch-size 256] [--device cpu] [--small-input]
                                [--precision auto|32-true|bf16-mixed] [--clock-ghz G]

Writes n random-blob galaxies (3 x size x size, g r z) over a square patch of side ``--patch-deg``
degrees (2 degrees: 1-4 nside-16 tiles, so nearly every batch is full, as in a real survey, whose tiles
hold from thousands to millions of objects; a wide patch spreads a small n thinly, and the
part-filled last batch of each tile then dominates) to a temporary MMU survey, exports a randomly
initialised encoder per arch, then times

* ``embed_catalog`` end to end (HDF5 reads, preprocessing, forward, Parquet writes), per DataLoader
  reader-process count in ``--workers``;
* the bare ``encoder(x)`` over the same objects, already preprocessed and in memory, same batch size.

Both run in ``--precision`` (bf16 autocast around the forward where the CPU has bf16 units under
``auto``). Prints one line per figure: objects/s of each, the ratio catalogue / bare (goal >= 0.9), and the
forward's matrix FLOPs (torch's FlopCounterMode on one batch) per second of the catalogue run and of the
bare forward, as a fraction of the machine's peak for the precision (bench/peak.py; CPU only).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from astroembed.preprocess.image import PreprocessConfig
from astroembed.data.mmu import write_survey
from astroembed.data.records import Galaxy, Image
from astroembed.embed import EmbedConfig, embed_catalog
from astroembed.inference import load
from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.models.io import save_model
from astroembed.runtime import autocast, keep_freed_memory, resolve_precision
from peak import count_flops, machine_peak

BANDS = ("g", "r", "z")


def galaxies(n: int, size: int, patch_deg: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    for i in range(n):
        profile = np.exp(-0.5 * (xx ** 2 + yy ** 2) / rng.uniform(2, size / 8) ** 2)
        flux = rng.uniform(0.5, 2, (3, 1, 1)) * profile + rng.normal(0, 0.02, (3, size, size))
        yield Galaxy(f"g{i:07d}", float(rng.uniform(150, 150 + patch_deg)), float(rng.uniform(0, patch_deg)),
                     image=Image(flux.astype(np.float32), BANDS, psf_fwhm=[1.3, 1.2, 1.1], pixel_scale=0.262))


def export(arch: str, size: int, directory: Path, small_input: bool) -> Path:
    torch.manual_seed(0)
    options = {"small_input": small_input} if arch.startswith("resnet") else {}
    cfg = ImageEncoderConfig(arch=arch, in_channels=3, image_size=size, **options)
    encoder = build_image_encoder(cfg)
    return save_model(encoder, {"model_type": "image_encoder", "modality": "image", "model": cfg.to_dict(),
                                "preprocessing": PreprocessConfig().to_dict(), "bands": list(BANDS),
                                "embed_dim": int(encoder.embed_dim)}, directory)


@torch.inference_mode()
def bare_forward(model: Path, images: np.ndarray, batch_size: int, device: str, precision: str) -> float:
    """Objects/s of encoder(x) alone on preprocessed tensors already on the device (one pass).

    Each batch is prepared just before its forward and only the forward is timed: one prepared batch
    is resident at a time, as in the catalogue run. (Preparing every batch first kept ~330 MB more
    resident; that loop then measured 8-11 % fewer objects/s than this one and 1.22-1.25x below the
    catalogue that contains the same forward pass.)
    """
    embedder = load(model, device=device, precision=precision)
    elapsed = 0.0
    for i in range(0, len(images), batch_size):
        x = embedder.prepare(images[i:i + batch_size])
        if embedder.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast(embedder.device.type, embedder.precision):
            embedder.encoder(x).float().cpu()
        if embedder.device.type == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
    return len(images) / elapsed


def catalog(model: Path, data: Path, out: Path, batch_size: int, workers: int, device: str, precision: str) -> float:
    """Objects/s of embed_catalog from scratch (one pass)."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(out), device=device, precision=precision,
                              batch_size=batch_size, num_workers=workers), progress=False)
    return n_objects(data) / (time.perf_counter() - t0)


def n_objects(data: Path) -> int:
    import h5py

    total = 0
    for tile in data.rglob("*.hdf5"):
        with h5py.File(tile, "r") as f:
            total += f["object_id"].shape[0]
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--archs", nargs="+", default=["small_cnn", "resnet18"])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--patch-deg", type=float, default=2.0, help="side of the survey patch in degrees")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed passes of each; best kept")
    parser.add_argument("--small-input", action="store_true",
                        help="ResNet 3x3 stride-1 stem (about 16x the FLOPs at 96 px; slow on a CPU)")
    parser.add_argument("--precision", default="auto", help="auto, 32-true or bf16-mixed")
    parser.add_argument("--clock-ghz", type=float, default=None, help="override the clock read from /proc/cpuinfo")
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision, "cuda" if args.device.startswith("cuda") else "cpu")
    # Both sides of every comparison run with the allocator setting the package uses (runtime.py);
    # without it CPU figures mostly measure the kernel's page faults.
    print(f"keep_freed_memory: {keep_freed_memory()}")
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        write_survey(galaxies(args.n, args.size, args.patch_deg), root / "survey", "bench")
        data = root / "survey" / "bench" / "default"
        n_tiles = len(list(data.glob("healpix=*")))
        images = np.stack([g.image.flux for g in galaxies(args.n, args.size, args.patch_deg)])
        print(f"survey: {args.n} objects, 3x{args.size}x{args.size}, {n_tiles} tiles, batch {args.batch_size}, "
              f"device {args.device}, precision {args.precision}, torch threads {torch.get_num_threads()}")
        peak = machine_peak(args.precision, clock=args.clock_ghz) if args.device == "cpu" else None
        if peak:
            print(peak.describe())
        for arch in args.archs:
            model = export(arch, args.size, root / arch, args.small_input)
            warm = EmbedConfig(model=str(model), data=str(data), out=str(root / f"warm-{arch}"), device=args.device,
                               precision=args.precision, batch_size=args.batch_size)
            embed_catalog(warm, progress=False)  # warm-up (allocator, caches)
            # The reference and the catalogue runs alternate, best of --repeats each: a shared machine's
            # speed drifts by +-20 % from one minute to the next, which back-to-back blocks would
            # attribute to whichever ran in the slow minute.
            bare, rates = 0.0, {w: 0.0 for w in args.workers}
            for _ in range(args.repeats):
                bare = max(bare, bare_forward(model, images, args.batch_size, args.device,
                                                args.precision))
                for workers in args.workers:
                    rates[workers] = max(rates[workers], catalog(model, data, root / "out", args.batch_size,
                                                                 workers, args.device, args.precision))
            flops = forward_flops(model, images, args.precision) if peak else 0.0  # per object
            print(f"{arch}: bare forward {bare:,.0f} objects/s (best of {args.repeats})"
                  + efficiency(flops, bare, peak))
            for workers, rate in rates.items():
                print(f"{arch}: embed_catalog num_workers={workers} {rate:,.0f} objects/s, "
                      f"ratio catalogue/bare {rate / bare:.2f}" + efficiency(flops, rate, peak))


def forward_flops(model: Path, images: np.ndarray, precision: str) -> float:
    """Matrix FLOPs of the encoder's forward per object (counted by torch on a batch of 16)."""
    embedder = load(model, device="cpu", precision=precision)
    x = embedder.prepare(images[:16])
    with torch.inference_mode(), autocast("cpu", embedder.precision):
        return count_flops(lambda: embedder.encoder(x)) / len(x)


def efficiency(flops_per_object: float, objects_per_s: float, peak) -> str:
    if not peak:
        return ""
    achieved = flops_per_object * objects_per_s
    return (f"; {flops_per_object / 1e9:.3f} GFLOP/object, {achieved / 1e9:.1f} GFLOP/s = "
            f"{100 * achieved / peak.flops:.2f} % of peak")


if __name__ == "__main__":
    main()
