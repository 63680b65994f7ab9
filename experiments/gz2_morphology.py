"""Galaxy Zoo 2 spirals vs non-spirals: do self-supervised embeddings carry morphology?

    python experiments/gz2_morphology.py --data ../shared/data/galaxy_zoo2/train --out runs/gz2 --max-minutes 15

Holds out 30% of the 1,400 real JPEG cutouts, pretrains an image encoder on the other 70% without
labels (CPU, time budget), then compares logistic-regression probes on frozen features of
(a) the pretrained encoder, (b) the same architecture randomly initialised, (c) PCA of the pixels;
and, with 10% of the training labels, the pretrained probe against the same encoder family trained
from scratch with those labels. Prints a table and writes RUN/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from astroembed.preprocess.image import PreprocessConfig, preprocess, standardize
from astroembed.data.folder_dataset import ImageFolderDataset
from astroembed.evaluate.metrics import accuracy_score
from astroembed.evaluate.probes import linear_classifier, pca_baseline, split_indices
from astroembed.evaluate.supervised import SupervisedBaseline
from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.models.io import load_model
from astroembed.config import load_yaml_config
from astroembed.train.image import ImagePretrainConfig, pretrain_image

BANDS = ("R", "G", "B")


@torch.no_grad()
def features(encoder, images, config: PreprocessConfig) -> np.ndarray:
    encoder.eval()
    return np.concatenate([encoder(preprocess(images[i:i + 256], config, BANDS)).numpy()
                           for i in range(0, len(images), 256)])


def probe_accuracy(train_x, train_y, test_x, test_y) -> float:
    return float(accuracy_score(test_y, linear_classifier().fit(train_x, train_y).predict(test_x)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/galaxy_zoo2/train")
    parser.add_argument("--out", default="runs/gz2")
    parser.add_argument("--max-minutes", type=float, default=15.0)
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--supervised-steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gain-jitter", type=float, default=0.1)
    parser.add_argument("--num-workers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)

    pre = PreprocessConfig(mode="rgb", input_crop=212, input_size=96, crop_size=64)
    dataset = ImageFolderDataset(args.data, standardize=partial(standardize, config=pre))
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])  # (N, 3, 96, 96), 0-255
    labels = dataset.labels
    spiral = dataset.classes.index("spirals")
    y = (labels == spiral).astype(int)
    train, test = split_indices(len(dataset), test_fraction=0.3, seed=args.seed)
    print(f"{len(dataset)} images ({y.sum()} spirals); train {len(train)}, held-out test {len(test)}")

    t0 = time.perf_counter()
    config = load_yaml_config(ImagePretrainConfig, None, {
        "data": args.data, "out": str(out / "pretrain"), "method": args.method,
        "encoder": {"arch": args.arch}, "preprocess": pre.to_dict(), "train_indices": train.tolist(),
        # 8-bit colour has no bands to redden or PSF to blur: per-band gain jitter stands in for reddening.
        "augment": {"physical": False, "crop_size": 64, "max_shift": 4.0, "scale_range": [0.9, 1.1],
                    "gain_jitter": args.gain_jitter},
        "run": {"max_minutes": args.max_minutes, "max_epochs": 1000, "batch_size": args.batch_size,
                "num_workers": args.num_workers, "learning_rate": 1e-3, "warmup_steps": 50, "seed": args.seed,
                "checkpoint_every_n_steps": 25}})
    model_dir = pretrain_image(config)
    pretrain_minutes = (time.perf_counter() - t0) / 60
    encoder, saved = load_model(model_dir)
    preprocess_config = PreprocessConfig.from_dict(saved["preprocessing"])

    torch.manual_seed(args.seed)
    random_encoder = build_image_encoder(ImageEncoderConfig(arch=args.arch, in_channels=3, image_size=64))
    x_pre = features(encoder, images, preprocess_config)
    x_rand = features(random_encoder, images, preprocess_config)
    pixels = preprocess(images, preprocess_config, BANDS).reshape(len(images), -1).numpy()
    pca = pca_baseline(64, seed=args.seed).fit(pixels[train])
    x_pca = pca.transform(pixels)

    results = {"n_train": int(len(train)), "n_test": int(len(test)), "arch": args.arch, "method": args.method,
               "pretrain_minutes": round(pretrain_minutes, 2), "chance": float(max(y[test].mean(), 1 - y[test].mean()))}
    for name, x in (("pretrained", x_pre), ("random_init", x_rand), ("pca_pixels", x_pca)):
        results[f"probe_accuracy_{name}"] = probe_accuracy(x[train], y[train], x[test], y[test])

    rng = np.random.default_rng(args.seed)
    few = np.sort(np.concatenate([rng.choice(train[y[train] == c], size=int(round(args.label_fraction * np.sum(
        y[train] == c))), replace=False) for c in (0, 1)]))
    results["n_few_labels"] = int(len(few))
    results["few_label_probe_accuracy_pretrained"] = probe_accuracy(x_pre[few], y[few], x_pre[test], y[test])
    scratch = SupervisedBaseline("image", "classification", max_steps=args.supervised_steps, image_arch=args.arch,
                                 bands=BANDS, preprocess=preprocess_config, seed=args.seed).fit(images[few], y[few])
    accuracy = accuracy_score(y[test], scratch.predict(images[test]))
    results["few_label_supervised_from_scratch_accuracy"] = float(accuracy)

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
