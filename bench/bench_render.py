"""Rendering speed of the built-in survey simulator: 2 worker processes against 1 (the reference).

Both runs render the same N galaxies (same seed, identical output); the catalogue fit is done once
before timing, so the figures are rendering only (process start-up of the 2-worker pool included).

    python bench/bench_render.py            # N = 500
    python bench/bench_render.py 2000 --image-size 96
"""

from __future__ import annotations

import argparse
import time

from astroembed.data.sed import load_catalog
from astroembed.data.simulate import iter_simulated_galaxies


def rate(n: int, workers: int, image_size: int, seed: int) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in iter_simulated_galaxies(n, seed=seed, image_size=image_size, workers=workers))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=500, help="galaxies to render (default 500)")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    load_catalog()
    print(f"catalogue fit (10,000 SDSS galaxies, once per process): {time.perf_counter() - start:.2f} s")
    one = rate(args.n, 1, args.image_size, args.seed)
    print(f"workers=1 (reference): {one:.1f} galaxies/s ({args.n} galaxies, {args.image_size}px)")
    two = rate(args.n, 2, args.image_size, args.seed)
    print(f"workers=2: {two:.1f} galaxies/s ({args.n} galaxies, {args.image_size}px)")
    print(f"speed-up, 2 workers vs 1: {two / one:.2f}x")


if __name__ == "__main__":
    main()
