"""The main job's alignment choices, compared at fixed step budgets on the demo's survey and split.

    python experiments/demo_alignment.py --out runs/demo_alignment --n 2000 --image-steps 540 \
        --spectrum-steps 330 --variants frozen_demo end_to_end_78 warm_78

Pretrains the demo's image and spectrum encoders once (step budgets, so a busy machine gives the same
models as a quiet one; skipped when exported), then aligns them with every variant asked for and
reports, on the held-out 30 %: top-1 and top-1 % recall image -> spectrum and spectrum -> image, and
the image -> spectrum top-10 neighbours' median |dz|/(1+z) against random pairs (the main job's
metrics); with photometry aligned too, top-1 % recall photometry <-> image and photometry <-> spectrum and
the k-NN (k=16) redshift R^2 of the aligned photometry embedding. Variants (``VARIANTS``): end-to-end
CLIP (``pretrain_clip_stage``) at a step budget, from random heads or from the frozen alignment's, or heads
on frozen features (``align_frozen_stage``) with a number of cached image views, epochs, batch size,
validation early stopping, and photometry (a photometry encoder trained with the heads, cached views).
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
                                 redshift_report, retrieval_stage)

# name -> ("frozen", dotted settings of align_frozen_demo), ("end_to_end", max_steps, dotted settings of clip_demo)
# or ("warm", max_steps, ...): end to end starting from the heads of the shipped frozen alignment
VARIANTS = {
    "frozen_demo": ("frozen", {}),  # the shipped align_frozen_demo config
    # photometry as the third modality (issue 12; the shipped config aligns it): off, or trained jointly
    # with the image and spectrum heads (experiments/demo_photometry.py compares more on one cache)
    "frozen_no_photometry": ("frozen", {"photometry": False}),
    "frozen_photometry_joint": ("frozen", {"photometry_training": "joint", "photometry_epochs": None}),
    "frozen_v4_e300_b256": ("frozen", {"epochs": 300, "batch_size": 256, "validation_fraction": 0.0}),
    "frozen_v4_e60_b256": ("frozen", {"epochs": 60, "batch_size": 256, "validation_fraction": 0.0}),
    "frozen_v4_e100_b1024": ("frozen", {"epochs": 100, "batch_size": 1024, "validation_fraction": 0.0}),
    "frozen_v1_e300_b256_val": ("frozen", {"image_views": 1, "epochs": 300, "batch_size": 256}),
    "frozen_linear_e300_b1024_val": ("frozen", {"projection_hidden": 0, "epochs": 300}),
    "end_to_end_78": ("end_to_end", 78, {}),
    "warm_78": ("warm", 78, {}),
}


def evaluate(model, survey, out: Path, seed: int) -> dict:
    config = json.loads((Path(model) / "config.json").read_text())
    image = embed_stage(model, survey, out / "embeddings" / "image", "image")
    spectrum = embed_stage(model, survey, out / "embeddings" / "spectrum", "spectrum")
    photometry = (embed_stage(model, survey, out / "embeddings" / "photometry", "photometry")
                  if "photometry" in config["modalities"] else None)
    result = {"retrieval": retrieval_stage(image, spectrum, survey, seed, photometry),
              "neighbour_redshift": {"image->spectrum": neighbour_stage(image, spectrum, survey, seed)},
              "training": {k: config["training"].get(k) for k in ("embed_seconds", "train_seconds", "kept_epoch")}}
    if photometry is not None:
        result["photometry_redshift_knn"] = redshift_report(photometry, survey, seed, "photometry")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo_alignment")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-steps", type=int, default=540)
    parser.add_argument("--spectrum-steps", type=int, default=330)
    parser.add_argument("--spectrum-settings", default="{}", help="JSON dotted overrides of spectrum_masked_demo")
    parser.add_argument("--variants", nargs="+", default=["frozen_demo", "end_to_end_78"], choices=VARIANTS)
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
            heads = (align_frozen_stage(image_model, spectrum_model, survey, out / "clip_frozen_demo", args.seed)
                     if kind == "warm" else None)
            model = pretrain_clip_stage(image_model, spectrum_model, survey, run, 600.0, args.seed,
                                        max_steps=spec[0], settings=spec[1], init_heads=heads)
        seconds = time.perf_counter() - t0
        load = os.getloadavg()[0]
        result = {"variant": name, "seconds": round(seconds, 1), "load_average": load, **evaluate(model, survey, run,
                                                                                                   args.seed)}
        (out / f"alignment_{name}.json").write_text(json.dumps(result, indent=2))
        r, nb, t = result["retrieval"], result["neighbour_redshift"]["image->spectrum"], result["training"]
        photometry = " | ".join(f"{r[k]['top1pct']:.3f}" if k in r else "-" for k in (
            "photometry_to_image", "image_to_photometry", "photometry_to_spectrum", "spectrum_to_photometry"))
        z = result.get("photometry_redshift_knn")
        console.print(f"| {name} | {r['image_to_spectrum']['top1pct']:.3f} | {r['spectrum_to_image']['top1pct']:.3f} "
                      f"| {r['image_to_spectrum']['top1']:.3f} | {nb['median_dz_neighbours']:.4f} vs "
                      f"{nb['median_dz_random']:.4f} | {photometry} | {z['r2'] if z else float('nan'):.3f} "
                      f"| {seconds:.0f} s (cache {t['embed_seconds']} s, heads {t['train_seconds']} s) | {load:.1f} |")


if __name__ == "__main__":
    main()
