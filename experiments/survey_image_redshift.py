"""Built-in survey: zero-shot redshift from image embeddings, pretrained vs random init, through `evaluate`.

    python experiments/survey_image_redshift.py --out runs/survey --n 4000 --max-minutes 12

Builds (or reuses) the built-in survey, pretrains an image encoder on the 70 % that ``astroembed evaluate``
does not hold out (the survey-order split of every stage), embeds every galaxy with it and with the same
architecture randomly initialised, then runs

    astroembed evaluate --embeddings RUN/embeddings_pretrained --labels SURVEY --name pretrained
        --baseline random_init=RUN/embeddings_random_init --tasks photo-z:redshift --probes knn,linear
        --out RUN/report

and prints its k-NN and linear-probe NMAD, outlier fraction and R^2 of the held-out 30 % (with the
bootstrap intervals and label-efficiency curves in RUN/report/metrics.json and report.html). The
numbers come from evaluate alone; this script only builds, pretrains and embeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from astroembed.pipeline import build_survey, embed_stage, pretrain_image_stage, random_init_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/survey")
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=12.0)
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    out, console = Path(args.out), Console()
    survey = build_survey(out, args.n, args.seed, console)
    run = out / f"image_{args.method}_{args.arch}"
    model = pretrain_image_stage(survey, run, args.max_minutes, args.seed, args.arch, args.method, args.batch_size)
    baseline = random_init_model(model, run / "random_init_model", args.seed)
    pretrained_emb = embed_stage(model, survey, run / "embeddings_pretrained")
    random_emb = embed_stage(baseline, survey, run / "embeddings_random_init")
    from astroembed.cli import app

    app(["evaluate", "--embeddings", str(pretrained_emb), "--labels", str(survey), "--name", "pretrained",
         "--baseline", f"random_init={random_emb}", "--tasks", "photo-z:redshift", "--probes", "knn,linear",
         "--seed", str(args.seed), "--out", str(run / "report")], standalone_mode=False)
    task = json.loads((run / "report" / "metrics.json").read_text())["tasks"]["photo-z:redshift"]
    for name, probes in task["results"].items():
        for probe, r in probes.items():
            m, (lo, hi) = r["metrics"], r["intervals"]["nmad"]
            console.print(f"{name:12s} {probe:7s} NMAD {m['nmad']:.4f} [{lo:.4f}, {hi:.4f}]  R^2 {m['r2']:.3f}  "
                          f"outliers {m['outlier_fraction']:.3f}  ({task['n_test']} held-out galaxies)")


if __name__ == "__main__":
    main()
