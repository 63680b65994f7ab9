"""Spectra predicted from images through the CLIP shared space, on the demo's held-out galaxies.

    python experiments/spectrum_prediction.py --demo demo_output --figure docs/predicted_spectra.png

Needs a demo folder with the survey and the aligned model (``astroembed demo`` or its stages). Trains the
spectrum decoder on the training split (``pipeline.held_out_split``) with the shipped ``decoder_cpu`` config
(saved into ``DEMO/clip/model/spectrum_decoder``), then scores it on the held-out 30 % beside the two
baselines (:mod:`astroembed.evaluate.spectrum_prediction`): median chi^2/dof, the redshift recovered from
the predicted spectrum by the aligned spectrum encoder's k-NN, Dn4000 and H-alpha / [O II] line fluxes.
Writes DEMO/spectrum_prediction.json and the figure of five random held-out galaxies.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from astroembed.config import load_yaml_config
from astroembed.evaluate.spectrum_prediction import (knn_mean_spectrum, plot_prediction,
                                                     prediction_report, shifted_median_spectrum)
from astroembed.inference import load
from astroembed.models.spectrum_decoder import load_decoder
from astroembed.pipeline import SURVEY, held_out_split, survey_redshifts
from astroembed.train.spectrum_decoder import SpectrumDecoderConfig, cached_table, train_spectrum_decoder


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", default="demo_output")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=10, help="neighbours of both baselines")
    parser.add_argument("--figure", default=None)
    parser.add_argument("--set", nargs="*", default=[], help="decoder config overrides KEY=VALUE (YAML values)")
    args = parser.parse_args()
    import yaml

    demo = Path(args.demo)
    survey, model = demo / "survey" / SURVEY / "default", demo / "clip" / "model"
    ids, train, test = held_out_split(survey, args.seed)
    z = survey_redshifts(survey)
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    config = load_yaml_config(SpectrumDecoderConfig, "decoder_cpu", {
        **overrides, "model": str(model), "data": str(survey), "out": str(demo / "spectrum_decoder"),
        "train_indices": train.tolist(), "seed": args.seed})
    t0 = time.perf_counter()
    train_spectrum_decoder(config, log=print)
    print(f"decoder trained in {time.perf_counter() - t0:.0f} s")

    embedder = load(model)
    grid = embedder.spectrum_preprocess_config.grid
    reference = cached_table(embedder, config, Path(config.out) / "training_set.npz")
    reference["redshift"] = z[reference["index"]]
    # the held-out galaxies embedded once as well (cached beside the training set)
    held_out = cached_table(embedder, dataclasses.replace(config, train_indices=test.tolist()),
                            Path(config.out) / "held_out_set.npz")
    held_out["redshift"] = z[held_out["index"]]
    decoder, _ = load_decoder(model)
    with torch.no_grad():
        shape, log10_scale = decoder(torch.from_numpy(held_out["vector"]))
    median_shape, median_scale, z_knn = shifted_median_spectrum(reference, held_out["vector"], grid, args.k)
    predictions = {"decoder": (shape.numpy(), log10_scale.numpy()),
                   "knn_mean": knn_mean_spectrum(reference, held_out["vector"], args.k),
                   "shifted_median": (median_shape, median_scale)}
    observed = reference["flux"] * 10.0 ** reference["log10_scale"][:, None]
    train_vectors = embedder.embed_spectrum(observed.astype(np.float32), reference["ivar"], grid, reference["valid"])
    report = prediction_report(predictions, held_out, grid, embedder, train_vectors, reference["redshift"])
    report["knn_redshift_from_shared_space"] = float(np.median(np.abs(z_knn - held_out["redshift"])
                                                               / (1 + held_out["redshift"])))
    report["settings"] = {"k": args.k, "n_train": len(reference["index"]), "n_test": len(test),
                          "decoder": config.to_dict() | {"train_indices": None}}
    (demo / "spectrum_prediction.json").write_text(json.dumps(report, indent=2))
    for name in predictions:
        r = report[name]
        feats = ", ".join(f"{f} |d| {v['median_abs_error']:.3f} r {v['pearson_r']:.2f}"
                          for f, v in r["features"].items())
        print(f"{name:15s} chi2/dof median {r['chi2_per_dof_median']:.2f}; z from spectrum: NMAD "
              f"{r['redshift']['sigma_mad']:.4f} outliers {r['redshift']['outlier_fraction']:.3f}; {feats}")
    if args.figure:
        path, rows = plot_prediction(grid, held_out["flux"], held_out["valid"], shape.numpy(), args.figure,
                                     held_out["object_id"], held_out["redshift"], predictions["knn_mean"][0],
                                     n=5, seed=args.seed)
        print(f"figure of held-out galaxies {list(held_out['object_id'][rows])} -> {path}")


if __name__ == "__main__":
    main()
