"""Built-in survey: spectrum masked modelling, AstroCLIP alignment, zero-shot redshift and retrieval.

    python experiments/survey_alignment.py --out runs/survey --n 4000 --spectrum-minutes 15 --clip-minutes 10

Uses the same survey and 70/30 split as experiments/survey_image_redshift.py (and its image encoder,
pretrained if missing). Reports, for the held-out 30%:
- masked-chunk reconstruction: ivar-weighted MSE of the model vs linear interpolation, on chunks of
  the trained length and of 3, 6, 12 and 20 patches;
- zero-shot k-NN redshift (NMAD, R^2) from spectrum embeddings (and from the same transformer randomly
  initialised), and from image embeddings before and after alignment (and spectrum embeddings after
  alignment): one ``astroembed evaluate --tasks photo-z:redshift --probes knn`` with the other four
  catalogues as ``--baseline`` (RUN/redshift_report/metrics.json);
- cross-modal retrieval of the true partner, image -> spectrum and spectrum -> image: top-1 and top-1%
  recall against chance.
Writes RUN/alignment.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from astroembed.pipeline import (build_survey, embed_stage, neighbour_stage, pretrain_clip_stage,
                                 pretrain_image_stage, pretrain_spectrum_stage, random_init_model,
                                 reconstruction_stage, retrieval_stage)


def redshift_by_evaluate(spectrum_emb: Path, others: dict[str, Path], survey: Path, out: Path, seed: int) -> dict:
    """``astroembed evaluate`` of the spectrum embeddings with the other catalogues as baselines: the k-NN
    photo-z results of each (metrics, intervals, k) on the held-out split."""
    from astroembed.cli import app

    report = out / "redshift_report"
    app(["evaluate", "--embeddings", str(spectrum_emb), "--labels", str(survey), "--name", "spectrum",
         *[f"--baseline={name}={path}" for name, path in others.items()], "--tasks", "photo-z:redshift",
         "--probes", "knn", "--seed", str(seed), "--out", str(report), "--no-report"], standalone_mode=False)
    results = json.loads((report / "metrics.json").read_text())["tasks"]["photo-z:redshift"]["results"]
    return {name: probes["knn"] for name, probes in results.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/survey")
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-minutes", type=float, default=12.0)
    parser.add_argument("--spectrum-minutes", type=float, default=15.0)
    parser.add_argument("--clip-minutes", type=float, default=10.0)
    parser.add_argument("--wave-step", type=float, default=4.0)
    args = parser.parse_args()
    out, console = Path(args.out), Console()
    survey = build_survey(out, args.n, args.seed, console)
    image_run = out / "image_simclr_small_cnn"
    image_model = pretrain_image_stage(survey, image_run, args.image_minutes, args.seed)
    spectrum_model = pretrain_spectrum_stage(survey, out / "spectrum", args.spectrum_minutes, args.seed,
                                             {"preprocess.wave_step": args.wave_step})
    trained = reconstruction_stage(spectrum_model, survey, args.seed)
    # the same model on shorter and longer hidden chunks than it was trained with
    results = {"reconstruction": trained, "reconstruction_by_chunk_len": {
        c: trained if c == trained["chunk_len"]
        else reconstruction_stage(spectrum_model, survey, args.seed, chunk_len=c)
        for c in (3, 6, 12, 20)}}
    emb = out / "embeddings"
    spectrum_emb = embed_stage(spectrum_model, survey, emb / "spectrum", "spectrum")
    image_emb = embed_stage(image_model, survey, image_run / "embeddings_pretrained", "image")
    # the baseline: the same transformer and pooling, randomly initialised (no output standardisation)
    spectrum_random = random_init_model(spectrum_model, out / "spectrum_random_init" / "model", args.seed)
    spectrum_random_emb = embed_stage(spectrum_random, survey, emb / "spectrum_random_init", "spectrum")
    clip_model = pretrain_clip_stage(image_model, spectrum_model, survey, out / "clip", args.clip_minutes, args.seed)
    clip_image = embed_stage(clip_model, survey, emb / "clip_image", "image")
    clip_spectrum = embed_stage(clip_model, survey, emb / "clip_spectrum", "spectrum")
    results["redshift"] = redshift_by_evaluate(spectrum_emb, {
        "spectrum_random_init": spectrum_random_emb, "image_before_alignment": image_emb,
        "image_after_alignment": clip_image, "spectrum_after_alignment": clip_spectrum}, survey, out, args.seed)
    results["retrieval"] = retrieval_stage(clip_image, clip_spectrum, survey, args.seed)
    results["neighbour_redshift"] = {  # held-out queries, top-10 neighbours among all galaxies
        "image (pretrained)": neighbour_stage(image_emb, image_emb, survey, args.seed),
        "spectrum (pretrained)": neighbour_stage(spectrum_emb, spectrum_emb, survey, args.seed),
        "image (aligned)": neighbour_stage(clip_image, clip_image, survey, args.seed),
        "spectrum (aligned)": neighbour_stage(clip_spectrum, clip_spectrum, survey, args.seed),
        "image -> spectrum (aligned)": neighbour_stage(clip_image, clip_spectrum, survey, args.seed),
        "spectrum -> image (aligned)": neighbour_stage(clip_spectrum, clip_image, survey, args.seed)}
    (out / "alignment.json").write_text(json.dumps(results, indent=2))

    r = results["reconstruction"]
    console.print(f"masked reconstruction ({r['n_spectra']} held-out spectra): model MSE {r['model_mse']:.4f} vs "
                  f"linear interpolation {r['interpolation_mse']:.4f} (ratio {r['ratio']:.3f})")
    for c, r in results["reconstruction_by_chunk_len"].items():
        console.print(f"  hidden chunks of {c:2d} patches: model {r['model_mse']:.4f} vs interpolation "
                      f"{r['interpolation_mse']:.4f} (ratio {r['ratio']:.3f})")
    for name, rep in results["redshift"].items():
        m = rep["metrics"]
        console.print(f"k-NN redshift from {name:26s}: R^2 {m['r2']:.3f}  NMAD {m['nmad']:.4f}  (k={rep['k']})")
    for name, rep in results["retrieval"].items():
        console.print(f"{name}: top-1 {rep['top1']:.3f} (chance {rep['top1_chance']:.4f}), top-1% "
                      f"{rep['top1pct']:.3f} (chance {rep['top1pct_chance']:.3f}), median rank {rep['median_rank']:.0f}"
                      f" of {rep['n']}")
    for name, rep in results["neighbour_redshift"].items():
        console.print(f"top-10 neighbours, {name:28s}: median |dz|/(1+z) {rep['median_dz_neighbours']:.4f} vs random "
                      f"pairs {rep['median_dz_random']:.4f}")


if __name__ == "__main__":
    main()
