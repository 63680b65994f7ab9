"""HDF5 read throughput through the torch Dataset, against reading the same arrays from memory.

    python bench/bench_hdf5_read.py [--n 2000] [--workers 0 2]

Writes n galaxies shaped like the built-in survey (3x96x96 images with ivar and mask, 7781-pixel
spectra) to a temporary MMU survey, then iterates one epoch in shuffled order with a DataLoader
(batch 64) over (a) MMUDataset and (b) an in-memory TensorDataset of the same arrays. Prints
samples/s for each and the ratio HDF5 / memory.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from astroembed.data.dataset import MMUDataset
from astroembed.data.mmu import write_survey
from astroembed.data.records import Galaxy, Image, Spectrum


def galaxies(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    wave = np.linspace(3600, 9824, 7781)
    for i in range(n):
        # A 10 x 10 deg patch (about 8 HEALPix tiles), so tiles hold many objects as in a real survey.
        yield Galaxy(f"g{i}", float(rng.uniform(150, 160)), float(rng.uniform(0, 10)),
                     image=Image(rng.normal(size=(3, 96, 96)).astype(np.float32), ("g", "r", "z"),
                                 ivar=np.ones((3, 96, 96), np.float32), psf_fwhm=[1.3, 1.2, 1.1],
                                 pixel_scale=0.262),
                     spectrum=Spectrum(rng.normal(size=7781).astype(np.float32), wave,
                                       ivar=np.ones(7781, np.float32)),
                     labels={"redshift": float(rng.uniform(0, 0.5))})


def epoch(loader) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for batch in loader:
        n += len(batch["image"]) if isinstance(batch, dict) else len(batch[0])
    return time.perf_counter() - t0, n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        write_survey(galaxies(args.n), root, "bench")
        print(f"write: {args.n} galaxies in {time.perf_counter() - t0:.1f} s "
              f"({args.n / (time.perf_counter() - t0):.0f} galaxies/s)")
        dataset = MMUDataset(root, modalities=("image", "spectrum"), labels=("redshift",))
        images = np.stack([dataset.survey.galaxy(i).image.flux for i in range(len(dataset))])
        spectra = np.stack([dataset[i]["spectrum_flux"] for i in range(len(dataset))])
        memory = TensorDataset(torch.from_numpy(images), torch.from_numpy(images), torch.from_numpy(spectra),
                               torch.from_numpy(spectra))
        for workers in args.workers:
            kw = dict(batch_size=64, shuffle=True, num_workers=workers, persistent_workers=False)
            t_mem, n_mem = epoch(DataLoader(memory, **kw))
            t_h5, n_h5 = epoch(DataLoader(dataset, **kw))
            assert n_mem == n_h5 == args.n
            print(f"workers={workers}: hdf5 {n_h5 / t_h5:8.0f} samples/s | memory {n_mem / t_mem:8.0f} samples/s"
                  f" | ratio hdf5/memory {t_mem / t_h5:.2f}")


if __name__ == "__main__":
    main()
