"""Galaxy Zoo 2 spirals vs non-spirals through `astroembed evaluate`: label-efficiency of a probe on
self-supervised embeddings against the same CNN family trained from scratch.

    python experiments/gz2_morphology.py --out runs/gz2 --max-minutes 10 --supervised-steps 100 --supervised-minutes 5

1. Pretrain a small CNN with SimCLR (``astroembed pretrain image`` on the JPEG folder) on the objects that
   ``astroembed evaluate`` does not hold out: the survey-order split of the folder's images (seed 0, 30 %
   held out), so no held-out galaxy is seen, even without its label.
2. Save the same architecture randomly initialised (the baseline that shows what pretraining adds) and
   ``astroembed embed`` the folder with it.
3. ``astroembed evaluate --model RUN/pretrain/model --data FOLDER --tasks classification:class
   --baseline random_init=RUN/embeddings_random_init --supervised-steps N``: probes on both embeddings
   and a network trained from scratch, at every label fraction, on the same held-out images.

The printed table and RUN/report/metrics.json (report.html, label_efficiency PNG) come from evaluate
alone; this script only prepares the two models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from astroembed.data.readers.image_folder import list_images
from astroembed.evaluate.probes import split_indices

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "galaxy_zoo2" / "train"


def pretrain(data: Path, run: Path, max_minutes: float, seed: int, test_fraction: float) -> Path:
    """SimCLR on the training part of evaluate's split (folder order); returns the exported model."""
    from astroembed.config import load_yaml_config
    from astroembed.train.image import ImagePretrainConfig, pretrain_image

    train, _ = split_indices(len(list_images(data)), test_fraction, seed)
    config = load_yaml_config(ImagePretrainConfig, None, {
        "data": str(data), "out": str(run), "method": "simclr", "encoder": {"arch": "small_cnn"},
        "train_indices": train.tolist(),
        # 8-bit colour has no bands to redden or PSF to blur: per-band gain jitter stands in for reddening.
        "augment": {"physical": False, "crop_size": 64, "max_shift": 4.0, "scale_range": [0.9, 1.1],
                    "gain_jitter": 0.1},
        "run": {"max_minutes": max_minutes, "max_epochs": 1000, "batch_size": 128, "num_workers": 0,
                "learning_rate": 1e-3, "warmup_steps": 50, "seed": seed, "checkpoint_every_n_steps": 25}})
    return pretrain_image(config)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path("runs/gz2"))
    parser.add_argument("--max-minutes", type=float, default=10.0, help="pretraining budget")
    parser.add_argument("--supervised-steps", type=int, default=100, help="steps of each from-scratch fit")
    parser.add_argument("--supervised-minutes", type=float, default=0.0,
                        help="wall-clock cap of each from-scratch fit (0: steps only)")
    parser.add_argument("--label-fractions", default="0.01,0.03,0.1,0.3,1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-only", action="store_true")
    args = parser.parse_args()
    test_fraction = 0.3  # evaluate's default: the split pretraining leaves out
    model = args.out / "pretrain" / "model"
    if not (model / "model.safetensors").exists():
        model = pretrain(args.data, args.out / "pretrain", args.max_minutes, args.seed, test_fraction)
    if args.pretrain_only:
        return
    from astroembed.pipeline import random_init_model

    from astroembed.cli import app

    random_model = random_init_model(model, args.out / "random_init_model", args.seed)
    random_embeddings = args.out / "embeddings_random_init"
    app(["embed", "--model", str(random_model), "--data", str(args.data), "--out", str(random_embeddings)],
        standalone_mode=False)
    app(["evaluate", "--model", str(model), "--data", str(args.data), "--name", "simclr",
         "--tasks", "classification:class", "--baseline", f"random_init={random_embeddings}",
         "--probes", "knn,linear", "--supervised-steps", str(args.supervised_steps),
         "--supervised-minutes", str(args.supervised_minutes),
         "--label-fractions", args.label_fractions, "--seed", str(args.seed), "--out", str(args.out / "report")],
        standalone_mode=False)
    metrics = json.loads((args.out / "report" / "metrics.json").read_text())
    print(json.dumps(metrics["tasks"]["classification:class"]["label_efficiency"], indent=1))


if __name__ == "__main__":
    main()
