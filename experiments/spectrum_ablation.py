"""Built-in survey: which masked-modelling choices make the spectrum transformer reconstruct and embed well.

    python experiments/spectrum_ablation.py --out runs/survey --minutes 5 [--variants sincos_c12 random_c6 ...]
    python experiments/spectrum_ablation.py --out runs/survey --model runs/survey/spectrum/model

Each variant pretrains the same transformer (dim 128, depth 4, 4 A grid) for ``--minutes`` on the 70%
training split (the split of the other survey experiments), then reports on the held-out 30%:
masked-chunk reconstruction (model vs linear interpolation, on the chunk length it trained with) and
k-NN (k=16, cosine) redshift R^2 of its embeddings pooled over 4, 8 and 16 wavelength bins, each raw
and standardised on the training split (what the exported model does for its own pooling).
``--model`` reports the same for an already exported model instead of training variants.
Writes RUN/spectrum_ablation/<variant>/result.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console

from astroembed.pipeline import build_survey, held_out_split, pretrain_spectrum_stage, reconstruction_stage

# name -> (positional init, hidden chunk length in patches, masked-modelling decoder baseline)
VARIANTS = {
    "random_c6": ("random", 6, "none"),
    "sincos_c6": ("sincos", 6, "none"),
    "sincos_c12": ("sincos", 12, "none"),
    "random_c12": ("random", 12, "none"),
    "interp_random_c6": ("random", 6, "interpolation"),
    "interp_sincos_c6": ("sincos", 6, "interpolation"),
    "interp_sincos_c12": ("sincos", 12, "interpolation"),
}


def embeddings_by_pooling(model_dir: Path, survey: Path, n_bins: int) -> tuple[list, np.ndarray]:
    """Object ids and pooled (not standardised) embeddings of every galaxy with the model's weights,
    pooled over ``n_bins`` wavelength ranges."""
    import torch

    from astroembed.data.mmu import MMUSurvey
    from astroembed.inference import load

    embedder = load(model_dir)
    model = embedder.model
    model.config.n_bins = n_bins  # pooling only: the weights do not depend on it
    data = MMUSurvey(survey)
    out = []
    for start in range(0, len(data), 256):
        rows = [data.galaxy(i).spectrum for i in range(start, min(start + 256, len(data)))]
        batch = embedder.prepare(rows)
        with torch.no_grad():
            pooled = model._pooled(batch)
        out.append(pooled.numpy())
    return list(data.object_ids), np.concatenate(out)


def standardised(vectors: np.ndarray, survey: Path) -> np.ndarray:
    """The exported model's output standardisation, refitted for this pooling on the training split."""
    _, train, _ = held_out_split(survey)
    mean, std = vectors[train].mean(0), vectors[train].std(0, ddof=1)
    return (vectors - mean) / np.where(std > 1e-6, std, 1.0)


def knn_r2(ids: list, vectors: np.ndarray, survey: Path) -> float:
    from astroembed.data.mmu import MMUSurvey
    from astroembed.evaluate.redshift import knn_redshift_report

    survey_ids, train, test = held_out_split(survey)
    assert list(survey_ids) == ids
    z = MMUSurvey(survey).labels(["redshift"])["redshift"].astype(np.float64)
    return knn_redshift_report(vectors[train], z[train], vectors[test], z[test], k=16)["r2"]


def pooling_r2(model: Path, survey: Path) -> dict[str, float]:
    """k-NN redshift R^2 of one model's weights with 4, 8 and 16 pooling bins, raw and standardised."""
    r2 = {}
    for n_bins in (4, 8, 16):
        ids, vectors = embeddings_by_pooling(model, survey, n_bins)
        r2[f"{n_bins} bins, raw"] = knn_r2(ids, vectors, survey)
        r2[f"{n_bins} bins, standardised"] = knn_r2(ids, standardised(vectors, survey), survey)
    return r2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/survey")
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--model", default=None, help="evaluate this exported spectrum model instead of training")
    args = parser.parse_args()
    out, console = Path(args.out), Console()
    survey = build_survey(out, args.n, 0, console)
    if args.model:
        console.print(f"{args.model}: k-NN R^2 " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                            pooling_r2(Path(args.model), survey).items()))
        return
    for name in args.variants:
        pos_init, chunk_len, baseline = VARIANTS[name]
        run_dir = out / "spectrum_ablation" / name
        settings = {"chunk_len": chunk_len, "model.pos_init": pos_init, "model.decoder_baseline": baseline}
        model = pretrain_spectrum_stage(survey, run_dir, args.minutes, 0, settings)
        rec = reconstruction_stage(model, survey)
        r2 = pooling_r2(model, survey)
        result = {"variant": name, "pos_init": pos_init, "chunk_len": chunk_len, "decoder_baseline": baseline,
                  "minutes": args.minutes, "reconstruction": rec, "knn_redshift_r2": r2}
        (run_dir / "result.json").write_text(json.dumps(result, indent=2))
        console.print(f"{name:18s} reconstruction ratio {rec['ratio']:.3f} (model {rec['model_mse']:.4f}, "
                      f"interpolation {rec['interpolation_mse']:.4f}); k-NN R^2 "
                      + ", ".join(f"{k} {v:.3f}" for k, v in r2.items()))


if __name__ == "__main__":
    main()
