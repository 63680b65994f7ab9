"""Where the demo's minutes go: held-out retrieval against the image and spectrum encoders' training.

    python experiments/demo_encoder_steps.py --demo demo_output --image-steps 900 --image-seed 0
    python experiments/demo_encoder_steps.py --demo demo_output --image-steps 900 \
        --image-settings '{"method": "moco", "queue_size": 1024, "temperature": 0.2}' --tag moco
    python experiments/demo_encoder_steps.py --demo demo_output --spectrum-steps 330 --align-seeds 0 1
    python experiments/demo_encoder_steps.py --demo demo_output --align-settings '{"image_views": 8}' --tta

Uses a finished demo's survey, split and encoders (``DEMO/image/model``, ``DEMO/spectrum/model``). With
``--image-steps`` (or ``--spectrum-steps``) it pretrains that encoder again from the shipped demo config for a
fixed number of steps (a busy machine gives the same model as a quiet one) with ``--image-seed`` and the
dotted ``--image-settings``; then it aligns the two encoders with the demo's frozen stage
(``align_frozen_demo`` plus ``--align-settings``, image and spectrum only) once per ``--align-seeds`` and
prints the image k-NN (k=16) redshift R^2 and the top-1 % recall image -> spectrum and spectrum -> image of
the 30 % held out. ``--tta`` adds the recall with each aligned image vector averaged over the cutout's 8
rotations and flips. The figures of BENCHMARKS.md, "Where the demo's minutes go", come from these runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from astroembed.config import load_yaml_config
from astroembed.data.mmu import MMUSurvey
from astroembed.embed.store import read_embeddings
from astroembed.evaluate.retrieval import retrieval_report
from astroembed.inference import load
from astroembed.pipeline import SURVEY, embed_stage, held_out_split, redshift_report, retrieval_stage
from astroembed.train.clip_frozen import FrozenAlignConfig, align_frozen
from astroembed.train.image import ImagePretrainConfig, pretrain_image
from astroembed.train.spectrum import SpectrumPretrainConfig, pretrain_spectrum


def retrain(config_cls, run, name: str, survey: Path, train, out: Path, steps: int, seed: int, settings: dict):
    config = load_yaml_config(config_cls, name, {**settings, "data": str(survey), "out": str(out),
                                                  "train_indices": train.tolist(), "run.max_minutes": 600.0,
                                                  "run.seed": seed, "run.max_steps": steps})
    return run(config)


def dihedral_mean(embedder, images: np.ndarray) -> np.ndarray:
    views = [embedder.embed(np.ascontiguousarray(np.rot90(images, k, axes=(-2, -1))[..., ::-1] if flip
                                                 else np.rot90(images, k, axes=(-2, -1))))
             for k in range(4) for flip in (False, True)]
    mean = np.mean(views, axis=0)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_output"))
    parser.add_argument("--out", type=Path, default=Path("runs/demo_encoder_steps"))
    parser.add_argument("--image-steps", type=int, default=None)
    parser.add_argument("--image-seed", type=int, default=0)
    parser.add_argument("--image-settings", default="{}", help="JSON dotted overrides of image_simclr_demo")
    parser.add_argument("--spectrum-steps", type=int, default=None)
    parser.add_argument("--align-settings", default="{}", help="JSON dotted overrides of align_frozen_demo")
    parser.add_argument("--align-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    survey = args.demo / "survey" / SURVEY / "default"
    ids, train, test = held_out_split(survey, 0)
    run = args.out / f"image{args.image_steps}_s{args.image_seed}_spectrum{args.spectrum_steps}{args.tag}"
    image, spectrum = args.demo / "image" / "model", args.demo / "spectrum" / "model"
    if args.image_steps:
        image = retrain(ImagePretrainConfig, pretrain_image, "image_simclr_demo", survey, train, run / "image",
                        args.image_steps, args.image_seed, json.loads(args.image_settings))
    if args.spectrum_steps:
        spectrum = retrain(SpectrumPretrainConfig, pretrain_spectrum, "spectrum_masked_demo", survey, train,
                           run / "spectrum", args.spectrum_steps, 0, {})
    r2 = redshift_report(embed_stage(image, survey, run / "image_embeddings", "image"), survey, 0)["r2"]
    print(f"image k-NN redshift R^2 {r2:.3f}")
    for seed in args.align_seeds:
        out = run / f"clip_seed{seed}"
        model = align_frozen(load_yaml_config(FrozenAlignConfig, "align_frozen_demo", {
            "photometry": False, **json.loads(args.align_settings), "image_model": str(image),
            "spectrum_model": str(spectrum), "data": str(survey), "out": str(out), "train_indices": train.tolist(),
            "seed": seed}))
        images, spectra = (embed_stage(model, survey, out / f"clip_{m}", m) for m in ("image", "spectrum"))
        recall = {k: v["top1pct"] for k, v in retrieval_stage(images, spectra, survey, 0).items()}
        print(f"alignment seed {seed}: top-1 % image -> spectrum {recall['image_to_spectrum']:.3f}, "
              f"spectrum -> image {recall['spectrum_to_image']:.3f}")
        if args.tta:
            opened = MMUSurvey(survey)
            cutouts = np.stack([opened[int(i)].image.flux for i in test]).astype(np.float32)
            averaged = dihedral_mean(load(model), cutouts)
            held_out_spectra = read_embeddings(spectra, "spectrum", object_ids=ids[test])[3]
            forward = retrieval_report(averaged, held_out_spectra)["top1pct"]
            backward = retrieval_report(held_out_spectra, averaged)["top1pct"]
            print(f"  with 8-fold rotation/flip averaging: {forward:.3f} / {backward:.3f}")


if __name__ == "__main__":
    main()
