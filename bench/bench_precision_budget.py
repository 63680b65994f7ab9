"""Time-budgeted pretraining on the built-in survey: optimizer steps per minute and quality, by precision.

    python bench/bench_precision_budget.py --out runs/precision --n 800 --minutes 1.5 --repeats 2

Runs the main job's image stage (SimCLR, small CNN, ``image_simclr_demo``) and spectrum stage (masked
modelling, ``spectrum_masked_demo``) on the training split with the same wall-clock budget, once per
precision and ``--repeats`` times, alternating (auto, 32, auto, 32, ...) so the machine's drift (other
users share its cores) hits both settings alike. Each run reports its optimizer steps per minute of
budget and its quality: the k-NN (k=16) redshift R^2 of the held-out galaxies from the run's embeddings
(embedded in the run's precision) for images, the held-out masked-chunk reconstruction MSE (model /
linear interpolation) for spectra. The spread between repeats of one setting is the run-to-run spread
that a difference between settings must exceed to matter. Writes OUT/precision_budget.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from astroembed.embed.catalog import EmbedConfig, embed_catalog
from astroembed.pipeline import build_survey, reconstruction_stage, redshift_report, train_on_split
from astroembed.runtime import resolve_precision
from astroembed.train.image import ImagePretrainConfig, pretrain_image
from astroembed.train.spectrum import SpectrumPretrainConfig, pretrain_spectrum


def global_step(model_dir: Path) -> int:
    return int(json.loads((model_dir / "config.json").read_text())["training"]["global_step"])


def image_run(survey: Path, run: Path, precision: str, args) -> dict:
    t0 = time.perf_counter()
    model = train_on_split(ImagePretrainConfig, pretrain_image, "image_simclr_demo", survey, run, args.minutes,
                           args.seed, {"run.precision": precision, "run.progress": False})
    wall = time.perf_counter() - t0
    emb = embed_catalog(EmbedConfig(model=str(model), data=str(survey), out=str(run / "embeddings"),
                                    modality="image", precision=precision), progress=False)
    report = redshift_report(emb, survey, args.seed)
    return {"steps": global_step(model), "wall_s": wall, "r2": report["r2"], "sigma_mad": report["sigma_mad"]}


def spectrum_run(survey: Path, run: Path, precision: str, args) -> dict:
    t0 = time.perf_counter()
    model = train_on_split(SpectrumPretrainConfig, pretrain_spectrum, "spectrum_masked_demo", survey, run,
                           args.minutes, args.seed, {"run.precision": precision, "run.progress": False})
    wall = time.perf_counter() - t0
    report = reconstruction_stage(model, survey, args.seed)
    return {"steps": global_step(model), "wall_s": wall, "model_mse": report["model_mse"],
            "mse_ratio": report["ratio"]}


def summary(runs: list[dict], minutes: float, quality: str) -> dict:
    out = {}
    for precision in ("auto", "32"):
        mine = [r for r in runs if r["precision"] == precision]
        rates = [r["steps"] / minutes for r in mine]
        values = [r[quality] for r in mine]
        out[precision] = {"steps_per_min": rates, "mean_steps_per_min": float(np.mean(rates)),
                          quality: values, "spread": float(np.ptp(values))}
    out["speedup"] = out["auto"]["mean_steps_per_min"] / out["32"]["mean_steps_per_min"]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/precision")
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=1.5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--stages", nargs="+", default=["image", "spectrum"], choices=["image", "spectrum"])
    args = parser.parse_args()
    out, console = Path(args.out), Console()
    survey = build_survey(out, args.n, args.seed, console)
    console.print(f"precision auto resolves to {resolve_precision('auto', 'cpu')} on this CPU")
    results = {"minutes": args.minutes, "n": args.n}
    for stage, run_one, quality in (("image", image_run, "r2"), ("spectrum", spectrum_run, "mse_ratio")):
        if stage not in args.stages:
            continue
        runs = []
        for repeat in range(args.repeats):
            for precision in ("auto", "32"):  # alternating, so drift hits both settings
                run = out / f"{stage}_{precision}_{repeat}"
                shutil.rmtree(run, ignore_errors=True)  # a fresh run, not a resumed one
                r = {"precision": precision, "repeat": repeat, **run_one(survey, run, precision, args)}
                console.print(f"{stage} {precision:4s} #{repeat}: {r}")
                runs.append(r)
        results[stage] = {"runs": runs, **summary(runs, args.minutes, quality)}
        console.print(f"{stage}: steps/min auto {results[stage]['auto']['mean_steps_per_min']:.1f} vs 32 "
                      f"{results[stage]['32']['mean_steps_per_min']:.1f} ({results[stage]['speedup']:.2f}x); "
                      f"{quality} auto {results[stage]['auto'][quality]} vs 32 {results[stage]['32'][quality]}")
    (out / "precision_budget.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
