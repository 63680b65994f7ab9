"""Photometry as the main job's third modality, measured on one feature cache (issue 12, item 5).

    python experiments/demo_photometry.py --out runs/d --seeds 0 1 2

Takes the image and spectrum encoders that ``experiments/demo_alignment.py`` pretrained under OUT
(``OUT/image/model``, ``OUT/spectrum/model``) on OUT's survey, and the demo's split. Caches once what the
shipped ``align_frozen_demo`` stage caches (each training galaxy's spectrum once, its image in 4 views, its
photometry input in 4 views: the catalogue values + 3 with the noise redrawn from the ivar) and the held-out
galaxies' unaugmented inputs, then trains the stage's heads (``train_heads``) for each variant and seed:

- ``image_spectrum``: photometry off (the stage before this change);
- ``photometry_joint``: a photometry encoder trained from scratch with the heads, all three pairs at once
  (``photometry_training: joint``), on the catalogue values; ``..._noise4``: on 4 cached photometry views
  (noise redrawn from the ivar);
- ``photometry_after``: the image and spectrum heads first, then the photometry encoder and head aligned
  to their fixed projections (``photometry_training: after``, shipped); ``..._noise4`` likewise;
  ``..._e300``, ``..._e600``: that photometry stage for 300 or 600 epochs (``photometry_epochs``).

Reports on the held-out 30 %: top-1 % recall in the six directions between image, spectrum and photometry,
the k-NN (k=16, cosine) redshift R^2 of the aligned photometry embedding beside the same k-NN on the
standardised arcsinh magnitudes the encoder reads, and the seconds each part costs. Vectors come from the
heads in fp32 (the demo embeds through ``astroembed.load``). Writes OUT/photometry_sweep.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from astroembed.config import load_yaml_config
from astroembed.data.dataset import MMUDataset
from astroembed.evaluate.redshift import knn_redshift_report
from astroembed.evaluate.retrieval import retrieval_report
from astroembed.pipeline import SURVEY, held_out_split, survey_redshifts
from astroembed.train.clip import pair_losses
from astroembed.train.clip_build import build_aligned
from astroembed.train.clip_data import fit_training_photometry, survey_photometry_bands
from astroembed.train.clip_frozen import (FrozenAlignConfig, _alignment_inputs, _split, _train_stages,
                                          cache_features)

# name -> (photometry views, photometry_training, photometry_epochs)
VARIANTS = {"image_spectrum": (0, "after", None), "photometry_joint": (1, "joint", None),
            "photometry_joint_noise4": (4, "joint", None), "photometry_after": (1, "after", None),
            "photometry_after_noise4": (4, "after", None), "photometry_after_e300": (1, "after", 300),
            "photometry_after_noise4_e300": (4, "after", 300), "photometry_after_e600": (1, "after", 600),
            "photometry_after_noise4_e600": (4, "after", 600)}
DIRECTIONS = [("image", "spectrum"), ("spectrum", "image"), ("photometry", "image"), ("image", "photometry"),
              ("photometry", "spectrum"), ("spectrum", "photometry")]


def embed(model, cache, view_rows=0) -> dict[str, np.ndarray]:
    """Unit vectors of view 0 of every cached modality, through the heads (and the photometry encoder)."""
    out = {}
    with torch.no_grad():
        for m, c in cache.items():
            x = {k: v[view_rows] for k, v in c.items()} if isinstance(c, dict) else c[view_rows]
            if isinstance(c, dict):
                x = model.photometry_encoder(x)
            out[m] = F.normalize(getattr(model, f"{m}_head")(x).float(), dim=-1).numpy()
    return out


def run_variant(config, pre, cache, present, test_cache, z_train, z_test, variant: tuple, seed: int
                ) -> dict:
    views, training, epochs = variant
    cfg = dataclasses.replace(config, seed=seed, photometry=views > 0, photometry_training=training,
                              photometry_epochs=epochs)
    torch.manual_seed(seed)
    model, _ = build_aligned(cfg, lambda: pre)
    modalities = cfg.modalities
    trainable = ("photometry",) if views else ()
    keep = {m: (c if m != "photometry" else {k: v[:views] for k, v in c.items()})
            for m, c in cache.items() if m in modalities}
    n = len(present["image"])
    n_val = round(cfg.validation_fraction * n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    present = {m: present[m] for m in modalities}
    validation = _split(keep, present, order[:n_val], views=False)
    train_cache, train_present = _split(keep, present, order[n_val:])
    losses = pair_losses(modalities, cfg.init_temperature, cfg.max_logit_scale, gather_distributed=False)
    model.eval()
    t0 = time.perf_counter()
    history = _train_stages(model, losses, train_cache, train_present, cfg, torch.device("cpu"), validation,
                            trainable)
    seconds = time.perf_counter() - t0
    model.eval()
    test = embed(model, {m: c for m, c in test_cache.items() if m in modalities})
    result = {"variant_views": views, "seed": seed, "heads_seconds": round(seconds, 1),
              "kept_epoch": "/".join(str(min((r for r in history if r["stage"] == stage), key=lambda r: r["val_loss"])
                                         ["epoch"]) for stage in dict.fromkeys(r["stage"] for r in history)),
              "retrieval": {f"{a}_to_{b}": retrieval_report(test[a], test[b])["top1pct"]
                            for a, b in DIRECTIONS if a in test and b in test}}
    if views:
        train = embed(model, {"photometry": cache["photometry"]})["photometry"]
        result["photometry_knn_r2"] = knn_redshift_report(train, z_train, test["photometry"], z_test)["r2"]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo_alignment")
    parser.add_argument("--seed", type=int, default=0, help="the demo's split and cache seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="head-training seeds per variant")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    survey = out / "survey" / SURVEY / "default"
    _, train, test = held_out_split(survey, args.seed)
    z = survey_redshifts(survey)
    config = load_yaml_config(FrozenAlignConfig, "align_frozen_demo", {
        "image_model": str(out / "image" / "model"), "spectrum_model": str(out / "spectrum" / "model"),
        "data": str(survey), "train_indices": train.tolist(), "device": "cpu", "seed": args.seed, "photometry": True,
        "photometry_views": 4, "photometry_augment": {"reddening": False, "p_drop": 0.0}})
    dataset = MMUDataset(survey, modalities=config.modalities, indices=train)
    bands = survey_photometry_bands(dataset.survey, dataset.indices, str(survey))
    t0 = time.perf_counter()
    pre = fit_training_photometry(dataset, bands)
    fit_seconds = time.perf_counter() - t0
    torch.manual_seed(args.seed)
    model, configs = build_aligned(config, lambda: pre)
    inputs = _alignment_inputs(config, configs, dataset, bands)
    model.eval()
    saved = out / "photometry_sweep_cache.pt"  # the caches, reused by a rerun (only tensors: weights_only)
    t0 = time.perf_counter()
    if saved.is_file():
        cache, present, test_cache, cache_seconds = torch.load(saved, weights_only=True)
    else:
        cache, present = cache_features(model, dataset, inputs, config, torch.device("cpu"), ("photometry",))
        cache_seconds = time.perf_counter() - t0
        test_config = dataclasses.replace(config, image_views=1, photometry_views=1, image_augment=None,
                                          photometry_augment=None)
        test_cache, _ = cache_features(model, MMUDataset(survey, modalities=config.modalities, indices=test),
                                       inputs, test_config, torch.device("cpu"), ("photometry",))
        torch.save((cache, present, test_cache, cache_seconds), saved)
    magnitudes = [cache["photometry"]["values"][0, :, :, 0].numpy(), test_cache["photometry"]["values"][0, :, :, 0]]
    baseline = knn_redshift_report(magnitudes[0], z[train], magnitudes[1].numpy(), z[test])["r2"]
    print(f"photometry preprocessing fit {fit_seconds:.1f} s; training cache (4 image + 4 photometry views) "
          f"{cache_seconds:.1f} s; k-NN R^2 on standardised arcsinh magnitudes {baseline:.3f}")
    rows = []
    for name in args.variants:
        for seed in args.seeds:
            row = {"variant": name, **run_variant(config, pre, cache, present, test_cache, z[train], z[test],
                                                  VARIANTS[name], seed), "load_average": os.getloadavg()[0]}
            rows.append(row)
            r = row["retrieval"]
            print(f"| {name} | {seed} | " + " | ".join(f"{r[f'{a}_to_{b}']:.3f}" if f"{a}_to_{b}" in r else "-"
                                                      for a, b in DIRECTIONS)
                  + f" | {row.get('photometry_knn_r2', float('nan')):.3f} | {row['kept_epoch']} "
                  f"| {row['heads_seconds']} s | {row['load_average']:.1f} |", flush=True)
    (out / "photometry_sweep.json").write_text(json.dumps(
        {"fit_seconds": fit_seconds, "cache_seconds": cache_seconds, "magnitudes_knn_r2": baseline, "rows": rows},
        indent=2))


if __name__ == "__main__":
    main()
