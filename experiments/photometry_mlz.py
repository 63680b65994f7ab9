"""Real photometry: k-NN photometric redshift from photometry embeddings vs. raw magnitudes and colours.

    python experiments/photometry_mlz.py --out runs/mlz --max-steps 1500

The catalogue is MLZ's SDSS Main Galaxy Sample (../shared/data/catalogs/mlz/SDSS_MGS.train: 5,000 galaxies,
ugriz magnitudes with errors, spectroscopic redshift ``zs``). It has no spectra or images, so the
photometry encoder is trained alone, self-supervised: SimCLR on photometry (``astroembed pretrain
photometry``: noise redrawn from the ivar, Galactic reddening with the SDSS R_b table, band dropout) on the
training 70 % of the survey-order split that ``astroembed evaluate`` holds out (seed 0). Steps:

1. ``astroembed convert`` the catalogue into an MMU survey (magnitudes -> nanomaggies with ivar);
2. ``astroembed pretrain photometry`` on the training split (a step budget, reproducible on a busy machine);
3. ``astroembed embed`` it, and the same encoder randomly initialised (same preprocessing);
4. ``astroembed evaluate --tasks photo-z:zs --probes knn`` on the held-out 30 %, beside k-NN on the raw
   magnitudes + colours (u, g, r, i, z, u-g, g-r, r-i, i-z as MLZ gives them) and on the arcsinh
   magnitudes of the survey's fluxes (the built-in ``photometry`` baseline).

Prints NMAD, outlier fraction and R^2 of each and writes RUN/summary.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

CATALOGUE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "catalogs" / "mlz" / "SDSS_MGS.train"
MAGS_COLOURS = ["u", "g", "r", "i", "z", "u-g", "g-r", "r-i", "i-z"]


def astroembed(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "astroembed", *args], check=True)


def write_mags_colours(survey_ids: np.ndarray, out: Path) -> Path:
    """MLZ's magnitudes and colours with the survey's object ids (the converted survey keeps file order)."""
    from astroembed.evaluate.inputs import read_table

    line = next(x for x in Path(CATALOGUE).with_suffix(".inputs").read_text().splitlines()
                if x.split(":")[0].strip() == "Columns")  # MLZ's own header line omits "eu"
    names = [n.strip() for n in line.split(":", 1)[1].split("#")[0].split(",")]
    table = read_table(CATALOGUE, names=names)
    lines = ["object_id," + ",".join(MAGS_COLOURS)]
    for oid, row in zip(survey_ids, table):
        lines.append(oid + "," + ",".join(f"{float(row[c]):.6f}" for c in MAGS_COLOURS))
    out.write_text("\n".join(lines) + "\n")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/mlz")
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ebv-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="dE(B-V) range of the reddening augmentation (default: the config's)")
    parser.add_argument("--no-reddening", action="store_true", help="views differ in noise and bands only")
    args = parser.parse_args()
    out = Path(args.out)
    survey = out / "survey" / "mlz" / "default"
    if not survey.exists():
        astroembed("convert", str(CATALOGUE), "--out", str(out / "survey"), "--survey", "mlz")

    from astroembed.data.mmu import MMUSurvey
    from astroembed.evaluate.probes import split_indices

    ids = MMUSurvey(survey).object_ids.astype(str)
    train, _ = split_indices(len(ids), 0.3, args.seed)
    run = out / "photometry"
    if not (run / "model" / "model.safetensors").exists():
        from astroembed.train.photometry import PhotometryPretrainConfig, pretrain_photometry

        augment = {"reddening": not args.no_reddening, **({"ebv_range": args.ebv_range} if args.ebv_range else {})}
        pretrain_photometry(PhotometryPretrainConfig.from_dict({
            "data": str(survey), "out": str(run), "train_indices": train.tolist(), "augment": augment,
            "run": {"max_steps": args.max_steps, "batch_size": args.batch_size, "num_workers": 0,
                    "warmup_steps": 50, "seed": args.seed, "progress": False, "checkpoint_every_n_steps": 500}}))
    from astroembed.pipeline import random_init_model

    random_model = random_init_model(run / "model", out / "photometry_random_init" / "model", args.seed)
    for name, model in (("embeddings", run / "model"), ("embeddings_random_init", random_model)):
        if not (out / name).exists():
            astroembed("embed", "--model", str(model), "--data", str(survey), "--out", str(out / name),
                       "--device", "cpu")
    table = write_mags_colours(ids, out / "mags_colours.csv")
    report = out / "report"
    astroembed("evaluate", "--embeddings", str(out / "embeddings"), "--labels", str(survey), "--name",
               "photometry_simclr", "--tasks", "photo-z:zs", "--probes", "knn", "--out", str(report),
               "--baseline", f"random_init={out / 'embeddings_random_init'}",
               "--baseline", f"mags_colours={table}#{','.join(MAGS_COLOURS)}", "--baseline", "photometry",
               "--no-report", "--seed", str(args.seed))
    metrics = json.loads((report / "metrics.json").read_text())
    summary = {"max_steps": args.max_steps, "batch_size": args.batch_size, "reddening": not args.no_reddening,
               "ebv_range": args.ebv_range, "metrics": metrics}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(metrics, indent=2)[:4000])


if __name__ == "__main__":
    main()
