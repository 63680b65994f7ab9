"""Built-in survey: a short alignment of image, spectrum and photometry; retrieval in all six directions.

    python experiments/clip3_builtin.py --survey demo_output/survey/astroembed_sim/default \
        --image-model demo_output/image/model --spectrum-model demo_output/spectrum/model \
        --out runs/clip3 --max-steps 150

The image and spectrum encoders are exports of the main job's pretraining stages (or any others); the
photometry encoder (SDSS ugriz, the survey's real catalogue fluxes) is trained from scratch in the
alignment (``clip_three_cpu``: pairwise CLIP losses, backbones fine-tuned at 0.1x). Training uses the
main job's 70 % split; the report is on the held-out 30 %: for each ordered pair of modalities, the
rank of each galaxy's true partner among all held-out galaxies (top-1 and top-1 % recall, chance 1 %),
as ``astroembed demo`` reports image <-> spectrum. Writes RUN/retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import permutations
from pathlib import Path

MODALITIES = ("image", "spectrum", "photometry")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", required=True)
    parser.add_argument("--image-model", required=True)
    parser.add_argument("--spectrum-model", required=True)
    parser.add_argument("--out", default="runs/clip3")
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-minutes", type=float, default=None, help="Wall-clock budget (default: steps only).")
    parser.add_argument("--freeze", action="store_true", help="Freeze the image and spectrum encoders.")
    parser.add_argument("--no-photometry", action="store_true",
                        help="Image and spectrum only (the same recipe without the third modality, to compare).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    modalities = MODALITIES[:2] if args.no_photometry else MODALITIES

    from astroembed.embed.store import read_embeddings
    from astroembed.evaluate.retrieval import retrieval_report
    from astroembed.pipeline import embed_stage, held_out_split
    from astroembed.train.clip import CLIPConfig

    survey, out = Path(args.survey), Path(args.out)
    ids, train, test = held_out_split(survey, args.seed)
    start = time.monotonic()
    if not (out / "clip" / "model" / "model.safetensors").exists():
        from astroembed.train.clip import pretrain_clip

        config = CLIPConfig.from_yaml("clip_three_cpu", {
            "image_model": args.image_model, "spectrum_model": args.spectrum_model, "data": str(survey),
            "out": str(out / "clip"), "train_indices": train.tolist(), "freeze_image": args.freeze,
            "freeze_spectrum": args.freeze, "run.max_steps": args.max_steps, "run.batch_size": args.batch_size,
            "run.seed": args.seed, "run.progress": False, "photometry": not args.no_photometry})
        config.run.max_minutes = args.max_minutes  # None (an override of None would keep the config's 8)
        pretrain_clip(config)
    train_seconds = time.monotonic() - start
    vectors = {}
    for m in modalities:
        emb = embed_stage(out / "clip" / "model", survey, out / f"embeddings_{m}", m)
        vectors[m] = read_embeddings(emb, m, object_ids=ids[test])[3]
    steps = json.loads((out / "clip" / "model" / "config.json").read_text())["training"]["global_step"]
    results = {"max_steps": args.max_steps, "steps": steps, "batch_size": args.batch_size,
               "frozen_backbones": args.freeze,
               "train_seconds": round(train_seconds, 1), "n_held_out": int(len(test)),
               "retrieval": {f"{a}_to_{b}": retrieval_report(vectors[a], vectors[b])
                             for a, b in permutations(modalities, 2)}}
    (out / "retrieval.json").write_text(json.dumps(results, indent=2))
    for name, r in results["retrieval"].items():
        print(f"{name:24s} top-1 {r['top1']:.3f}  top-1% {r['top1pct']:.3f}")


if __name__ == "__main__":
    main()
