"""Vector index benchmark: build time, memory, queries/s and recall@10 of each index kind vs exact search.

    python bench/bench_index.py --n 100000 1000000 --dim 128 512 --queries 10000 --kinds flat hnsw ivfpq

Data (``clustered_embeddings``) is shaped like real embeddings rather than uniform noise, because ANN
recall on uniform random vectors says nothing about recall on a catalogue:
- ``--components`` (default 2000) Gaussian clusters ("galaxy types") with Dirichlet(1) population
  fractions, so some clusters are crowded and some rare;
- living in a random ``latent``-dimensional linear subspace (default dim // 4, at most 64: learned
  embeddings have an intrinsic dimension far below their width);
- cluster centres ~ N(0, I_latent), each cluster isotropic with its own scale 0.5 x LogNormal(0, 0.25)
  (so a cluster's radius is ~ a third of the distance between centres: clusters are distinct but
  neighbours inside one cluster are what the search must rank);
- plus isotropic noise N(0, 0.05^2 I_dim) in all dimensions, then every vector L2-normalised.
Queries are fresh draws from the same mixture (not catalogue members).

The reference is exact inner-product search (faiss IndexFlatIP) on the same vectors, timed in the same
run; recall@10 = mean fraction of the exact top 10 that a kind returns. Memory is the faiss
serialisation size of the index (what ``VectorIndex.save`` writes, minus ids). Threads: faiss uses
``--threads`` (default: all available cores), printed with the results. HNSW is swept over
``--ef-search`` and IVF-PQ over ``--nprobe`` (search-time settings, one build each); IVF-PQ is built
once per ``--ivfpq-refine`` option. Printed bytes/vector and the extrapolated size at 100M vectors
show what fits in memory by compression.
"""

from __future__ import annotations

import argparse
import os
import time

import faiss
import numpy as np

from astroembed.search.index import VectorIndex


def clustered_embeddings(n: int, dim: int, n_components: int = 2000, latent: int | None = None,
                         noise: float = 0.05, seed: int = 0, chunk: int = 200_000) -> np.ndarray:
    """(n, dim) float32 L2-normalised vectors from the Gaussian mixture described in the module docstring.

    The mixture itself (subspace, centres, scales, populations) depends only on ``seed // 1000`` so
    catalogue (seed) and queries (seed + 1) come from the same distribution.
    """
    latent = latent or min(max(dim // 4, 2), 64)
    mix = np.random.default_rng(seed // 1000)
    basis, _ = np.linalg.qr(mix.standard_normal((dim, latent)))
    centres = mix.standard_normal((n_components, latent)).astype(np.float32)
    scales = (0.5 * mix.lognormal(0.0, 0.25, n_components)).astype(np.float32)
    weights = mix.dirichlet(np.ones(n_components))
    basis_t = basis.T.astype(np.float32)

    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):  # chunks keep float64 temporaries small at 1M x 512
        m = min(chunk, n - start)
        comp = rng.choice(n_components, size=m, p=weights)
        z = centres[comp] + scales[comp, None] * rng.standard_normal((m, latent), dtype=np.float32)
        x = z @ basis_t + noise * rng.standard_normal((m, dim), dtype=np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` that appears in the same row of ``found``."""
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth))
    return hits / truth.size


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def fmt_bytes(b: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if b < 1024 or unit == "TB":
            return f"{b:.1f} {unit}"
        b /= 1024


def bench_one(n: int, dim: int, args) -> None:
    (xb, xq), t_gen = timed(lambda: (clustered_embeddings(n, dim, args.components, seed=1000 * args.seed),
                                      clustered_embeddings(args.queries, dim, args.components,
                                                           seed=1000 * args.seed + 1)))
    ids = np.char.add("obj", np.arange(n).astype(str))
    k = 10
    print(f"\n== n={n:,} dim={dim} queries={len(xq):,} k={k} (data generated in {t_gen:.1f} s)")

    exact = faiss.IndexFlatIP(dim)
    exact.add(xb)
    (_, truth), t_exact = timed(lambda: exact.search(xq, k))  # noqa: F821 (called before the del below)
    exact_qps = len(xq) / t_exact
    print(f"{'kind':<6} {'settings':<46} {'build s':>8} {'memory':>10} {'B/vec':>7} {'q/s':>9} "
          f"{'recall@10':>9} {'x exact':>8}")
    row = "{:<6} {:<46} {:>8.1f} {:>10} {:>7.0f} {:>9,.0f} {:>9.4f} {:>8.2f}"
    print(row.format("exact", "faiss IndexFlatIP (reference)", 0.0, fmt_bytes(exact.ntotal * dim * 4),
                     dim * 4, exact_qps, 1.0, 1.0))
    del exact

    for kind in args.kinds:
        if kind == "hnsw":
            configs = [dict(hnsw_m=args.hnsw_m, ef_construction=args.ef_construction)]
            sweep = ("ef_search", args.ef_search)
        elif kind == "ivfpq":
            configs = [dict(pq_m=args.pq_m, opq=args.opq, refine=None if r == "none" else r)
                       for r in args.ivfpq_refine]
            sweep = ("nprobe", args.nprobe)
        else:
            configs, sweep = [{}], (None, [None])
        for config in configs:
            index, t_build = timed(lambda kind=kind, config=config: VectorIndex(kind=kind, seed=args.seed,
                                                                                 **config).fit(xb, ids))
            mem = index.memory_bytes()
            # faiss stores 8-byte ids in IVF lists; VectorIndex keeps the string ids beside the index.
            per_vec = mem / n
            for value in sweep[1]:
                if sweep[0] is not None:
                    index.set_search_params(**{sweep[0]: value})
                res, t_search = timed(lambda index=index: index.search(xq, k))
                qps = len(xq) / t_search
                settings = {**config, **({sweep[0]: value} if sweep[0] else {})}
                if kind == "ivfpq":
                    ivf = faiss.downcast_index(faiss.extract_index_ivf(index.index_))
                    settings["nlist"], settings["pq_m"] = ivf.nlist, ivf.pq.M
                text = ",".join(f"{key}={v}" for key, v in settings.items() if v not in (None, False))
                print(row.format(kind, text or "exact", t_build, fmt_bytes(mem), per_vec, qps,
                                 recall_at(res.indices, truth), qps / exact_qps))
            if kind == "ivfpq":
                # Linear extrapolation over-estimates a little: the coarse centroids are a fixed cost.
                print(f"       -> {per_vec:.0f} bytes/vector: 100M vectors would take "
                      f"{fmt_bytes(per_vec * 1e8)} (+ string ids)")
            del index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dim", type=int, nargs="+", default=[128])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivfpq"],
                        choices=["flat", "hnsw", "ivfpq"])
    parser.add_argument("--components", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--pq-m", type=int, default=None)
    parser.add_argument("--opq", action="store_true")
    parser.add_argument("--ivfpq-refine", nargs="+", default=["none", "sq8"], choices=["none", "sq8", "flat"])
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    faiss.omp_set_num_threads(args.threads)
    print(f"faiss {faiss.__version__}, {args.threads} threads "
          f"({len(os.sched_getaffinity(0))} cores available to this process)")
    for n in args.n:
        for dim in args.dim:
            bench_one(n, dim, args)


if __name__ == "__main__":
    main()
