"""Speed of `astroembed evaluate` (issue 10, item 10): 10,000 objects, 4 tasks, every probe, label-efficiency
curves and bootstrap intervals, without the supervised from-scratch baselines (they have their own budget).

Synthetic embeddings with labels that depend on them (so every probe has something to learn). The
reference measured in the same run is scikit-learn's plain KNeighborsRegressor (k=16, brute force) fitted
and applied once per task on the same split: the cheapest thing an evaluation could do.

    PYTHONPATH=src python bench/bench_evaluate.py --n 10000 --dim 128
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def synthetic(n: int, dim: int, seed: int = 0):
    from astroembed.evaluate.inputs import FeatureSet, LabelTable

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    z = np.abs(0.3 + 0.1 * X[:, 0] + 0.02 * rng.normal(size=n))
    ids = np.array([f"obj{i}" for i in range(n)])
    columns = {"redshift": z, "mass": X[:, 1] + 0.5 * X[:, 2] ** 2 + 0.3 * rng.normal(size=n),
               "metallicity": np.tanh(X[:, 3]) + 0.3 * rng.normal(size=n),
               "spiral": (X[:, 4] + 0.5 * rng.normal(size=n) > 0).astype(int).astype(str)}
    return FeatureSet("embedding", ids, X, "synthetic"), LabelTable(ids, columns, "synthetic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    from sklearn.neighbors import KNeighborsRegressor

    from astroembed.evaluate.probes import split_indices
    from astroembed.evaluate.runner import EvaluateOptions, evaluate_embeddings
    from astroembed.evaluate.tasks import parse_tasks

    features, labels = synthetic(args.n, args.dim)
    tasks = parse_tasks("photo-z:redshift,regression:mass,regression:metallicity,classification:spiral")
    train, test = split_indices(args.n, 0.3, 0)
    t0 = time.perf_counter()
    for column in ("redshift", "mass", "metallicity"):
        KNeighborsRegressor(16, algorithm="brute").fit(features.X[train], labels.columns[column][train]).predict(
            features.X[test])
    reference = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        evaluate_embeddings([features], labels, tasks, out, EvaluateOptions(), report=False)
        seconds = time.perf_counter() - t0
    print(f"evaluate: {args.n} objects, dim {args.dim}, 4 tasks, probes knn/linear/mlp, label efficiency, "
          f"300 bootstrap resamples: {seconds:.1f} s (goal < 180 s); plain KNeighborsRegressor on 3 tasks "
          f"{reference:.2f} s; ratio {seconds / reference:.0f}x")


if __name__ == "__main__":
    main()
