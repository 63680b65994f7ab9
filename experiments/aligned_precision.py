"""What bf16 costs an aligned model's retrieval: each modality embedded in 32 bits and in bf16, every pairing.

    python experiments/aligned_precision.py --demo demo_output
    python experiments/aligned_precision.py --demo runs/heldout6000c --seed 1

Embeds the held-out galaxies of a demo folder (``pipeline.held_out_split`` with ``--seed``, the demo's seed)
with ``DEMO/clip/model`` (or ``--model``) through ``astroembed.load(..., precision=P)``, images and spectra
each in "32-true" and in "bf16-mixed" (bf16 needs a CPU with bf16 units or a GPU; elsewhere both are 32 bits),
and prints the top-1 % recall image -> spectrum and spectrum -> image of the four pairings. The figures of
BENCHMARKS.md, "bfloat16 costs retrieval", come from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import astroembed
from astroembed.data.mmu import MMUSurvey
from astroembed.evaluate.retrieval import retrieval_report
from astroembed.pipeline import SURVEY, held_out_split

PRECISIONS = ("32-true", "bf16-mixed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_output"))
    parser.add_argument("--model", type=Path, default=None, help="aligned model (default: DEMO/clip/model)")
    parser.add_argument("--seed", type=int, default=0, help="the demo's seed (its split)")
    args = parser.parse_args()
    survey_path = args.demo / "survey" / SURVEY / "default"
    _, _, test = held_out_split(survey_path, args.seed)
    survey = MMUSurvey(survey_path)
    galaxies = [survey[int(i)] for i in test]
    images = np.stack([g.image.flux for g in galaxies]).astype(np.float32)
    spectra = [g.spectrum for g in galaxies]
    model_path = args.model or args.demo / "clip" / "model"
    vectors = {}
    for precision in PRECISIONS:
        model = astroembed.load(model_path, precision=precision)
        vectors[precision] = (model.embed(images), model.embed_spectrum(spectra))
    print(f"{len(test)} held-out galaxies, model {model_path}")
    for image_precision in PRECISIONS:
        for spectrum_precision in PRECISIONS:
            a, b = vectors[image_precision][0], vectors[spectrum_precision][1]
            print(f"image {image_precision:10s} spectrum {spectrum_precision:10s}: top-1 % image -> spectrum "
                  f"{retrieval_report(a, b)['top1pct']:.3f}, spectrum -> image {retrieval_report(b, a)['top1pct']:.3f}")


if __name__ == "__main__":
    main()
