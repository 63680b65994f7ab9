"""Do anomaly scores on a model's embeddings find injected artefacts and objects of another kind (stars,
quasars) or instrument (HSC, HST pixel scales)? ROC-AUC per kind.

    python experiments/anomaly_injection.py --model demo_output/image/model \
        --survey demo_output/survey/astroembed_sim/default --embeddings demo_output/embeddings/image_pretrained

The reference is the training split's embeddings (the split of `astroembed demo`); artefacts are injected
into copies of held-out galaxies' cutouts, which are embedded with the model and scored against the
reference beside the same galaxies without artefacts; the pixel-quality score (from the training galaxies'
cutouts and ivar) and the combined ranking are scored beside the embedding's k-NN and IsolationForest.
Prints a table and writes --out (JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from astroembed.data.mmu import MMUSurvey
from astroembed.embed.store import read_embeddings
from astroembed.evaluate.inject import ARTEFACTS, injection_auc
from astroembed.evaluate.inject_objects import OTHER_OBJECTS
from astroembed.inference import load
from astroembed.pipeline import held_out_split


def _cutouts(survey, rows) -> tuple[np.ndarray, np.ndarray | None]:
    """Flux and ivar (None unless every cutout has one) of survey rows."""
    records = [survey[int(i)].image for i in rows]
    ivar = np.stack([r.ivar for r in records]).astype(np.float32) if all(r.has_ivar for r in records) else None
    return np.stack([r.flux for r in records]).astype(np.float32), ivar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--survey", type=Path, required=True)
    parser.add_argument("--embeddings", type=Path, required=True, help="the model's catalogue of the survey")
    parser.add_argument("--n", type=int, default=200, help="held-out galaxies to inject into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("anomaly_injection.json"))
    args = parser.parse_args()

    survey_ids, train, test = held_out_split(args.survey, args.seed)
    ids, _, _, vectors = read_embeddings(args.embeddings)
    row = {o: i for i, o in enumerate(ids)}
    reference = vectors[[row[o] for o in survey_ids[train]]]
    survey = MMUSurvey(args.survey)
    images, ivar = _cutouts(survey, test[:args.n])
    reference_images, reference_ivar = _cutouts(survey, train)
    embedder = load(args.model)
    kinds = sorted(ARTEFACTS) + sorted(OTHER_OBJECTS)  # artefacts, then stars, quasars, other cameras
    result = injection_auc(embedder.embed, reference, images, kinds=kinds, seed=args.seed,
                           injections={**ARTEFACTS, **OTHER_OBJECTS}, reference_images=reference_images,
                           reference_ivar=reference_ivar, ivar=ivar)
    print(f"{'injected':<22}{'k-NN':>7}{'IsoForest':>10}{'pixel':>7}{'combined':>9}  "
          "(ROC-AUC; median p: k-NN, combined)")
    for kind, r in result.items():
        print(f"{kind:<22}{r['knn']:>7.3f}{r['isolation_forest']:>10.3f}{r['pixel']:>7.3f}{r['combined']:>9.3f}"
              f"  {r['knn_median_pvalue']:.3f}, {r['combined_median_pvalue']:.3f}")
    args.out.write_text(json.dumps({"model": str(args.model), "n_normal": len(images), "auc": result}, indent=2))


if __name__ == "__main__":
    main()
