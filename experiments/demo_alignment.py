"""The main job's alignment choices, compared at fixed step budgets on the demo's survey and split.

    python experiments/demo_alignment.py --out runs/demo_alignment --n 2000 --image-steps 540 \
        --spectrum-steps 330 --variants frozen_v4_e300 end_to_end_78

Pretrains the demo's image and spectrum encoders once (step budgets, so a busy machine gives the same
models as a quiet one; skipped when exported), then aligns them with every variant asked for and
reports, on the held-out 30 %: top-1 and top-1 % recall image -> spectrum and spectrum -> image, and
the image -> spectrum top-10 neighbours' median |dz|/(1+z) against random pairs (the main job's
metrics). Variants (``VARIANTS``): end-to-end CLIP (``pretrain_clip_stage``) at a step budget, or
heads on frozen features (``align_frozen_stage``) with a number of cached image views and epochs.
Writes OUT/alignment_<variant>.json and prints one table row per variant with its wall time and the
load average, for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from rich.console import Console

from astroembed.pipeline import (align_frozen_stage, build_survey, embed_stage, neighbour_stage,
                                 pretrain_clip_stage, pretrain_image_stage, pretrain_spectrum_stage,
                                 retrieval_stage)

# name -> ("frozen", settings of FrozenAlignConfig) or ("end_to_end", max_steps, dotted CLIP settings)
VARIANTS = {
    "end_to_end_78": ("end_to_end", 78, {}),
    "end_to_end_frozen_78": ("end_to_end", 78, {"freeze_image": True, "freeze_spectrum": True}),
    "frozen_v1_e100": ("frozen", {"image_views": 1, "epochs": 100}),
    "frozen_v1_e300": ("frozen", {"image_views": 1, "epochs": 300}),
    "frozen_v4_e300": ("frozen", {"image_views": 4, "epochs": 300}),
    "frozen_v8_e300": ("frozen", {"image_views": 8, "epochs": 300}),
    "frozen_v4_e1000": ("frozen", {"image_views": 4, "epochs": 1000}),
    "frozen_v4_e300_linear": ("frozen", {"image_views": 4, "epochs": 300, "projection_hidden": 0}),
    "frozen_v4_e300_b512": ("frozen", {"image_views": 4, "epochs": 300, "batch_size": 512}),
    "frozen_v4_e300_wd1e-2": ("frozen", {"image_views": 4, "epochs": 300, "weight_decay": 0.01}),
}


def evaluate(model, survey, out: Path, seed: int) -> dict:
    image = embed_stage(model, survey, out / "embeddings" / "image", "image")
    spectrum = embed_stage(model, survey, out / "embeddings" / "spectrum", "spectrum")
    return {"retrieval": retrieval_stage(image, spectrum, survey, seed),
            "neighbour_redshift": {"image->spectrum": neighbour_stage(image, spectrum, survey, seed)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo_alignment")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-steps", type=int, default=540)
    parser.add_argument("--spectrum-steps", type=int, default=330)
    parser.add_argument("--spectrum-settings", default="{}", help="JSON dotted overrides of spectrum_masked_demo")
    parser.add_argument("--variants", nargs="+", default=["frozen_v4_e300", "end_to_end_78"], choices=VARIANTS)
    args = parser.parse_args()
    out, console = Path(args.out), Console()
    survey = build_survey(out, args.n, args.seed, console)
    image_model = pretrain_image_stage(survey, out / "image", 600.0, args.seed, max_steps=args.image_steps)
    spectrum_model = pretrain_spectrum_stage(survey, out / "spectrum", 600.0, args.seed,
                                             json.loads(args.spectrum_settings), max_steps=args.spectrum_steps)
    for name in args.variants:
        kind, *spec = VARIANTS[name]
        run = out / f"clip_{name}"
        t0 = time.perf_counter()
        if kind == "frozen":
            model = align_frozen_stage(image_model, spectrum_model, survey, run, args.seed, settings=spec[0])
        else:
            model = pretrain_clip_stage(image_model, spectrum_model, survey, run, 600.0, args.seed,
                                        max_steps=spec[0], settings=spec[1])
        seconds = time.perf_counter() - t0
        load = os.getloadavg()[0]
        result = {"variant": name, "seconds": round(seconds, 1), "load_average": load, **evaluate(model, survey, run,
                                                                                                   args.seed)}
        (out / f"alignment_{name}.json").write_text(json.dumps(result, indent=2))
        r, nb = result["retrieval"], result["neighbour_redshift"]["image->spectrum"]
        console.print(f"| {name} | {r['image_to_spectrum']['top1pct']:.3f} | {r['spectrum_to_image']['top1pct']:.3f} "
                      f"| {r['image_to_spectrum']['top1']:.3f} | {nb['median_dz_neighbours']:.4f} vs "
                      f"{nb['median_dz_random']:.4f} | {seconds:.0f} s | {load:.1f} |")


if __name__ == "__main__":
    main()
