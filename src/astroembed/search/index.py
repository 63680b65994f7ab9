"""Similarity search over an embedding catalogue: a faiss index that knows object ids and sky positions.

``VectorIndex`` is a thin scikit-learn-like wrapper around faiss. faiss does the hard part (exact and
approximate inner-product search); this module adds what a catalogue needs and faiss does not:
string object ids, RA/Dec of every object, removal of neighbours that are the query galaxy itself (by id,
or by angular separation when the same galaxy was catalogued twice), checked inputs, and a save format
that is plain files (faiss index + Parquet + JSON, never pickle).

Index kinds (``kind=``):

- ``"flat"``: exact search, ``IndexFlatIP`` over all vectors. No training, no build cost; a query costs
  N x D multiply-adds. Exact is cheap enough below ~100k vectors (10k queries over 100k x 512 take
  seconds), so ``"auto"`` uses it there: there is no recall to lose.
- ``"hnsw"``: ``IndexHNSWFlat`` (graph search, inner product). Query cost grows ~log N, recall ~0.95-0.99
  at typical ``ef_search``; memory is the raw vectors plus ~2 x ``hnsw_m`` x 4 bytes of graph per vector.
  ``"auto"`` uses it from 100k up to 5M vectors: at 5M x 512 the raw float32 vectors alone are 10 GB,
  which is about what a single workstation should spend on an index.
- ``"ivfpq"``: ``IndexIVFPQ`` (inverted lists of product-quantised codes; L2 on the unit vectors
  for cosine, see ``_new_ivfpq``), optionally behind an OPQ
  rotation and/or followed by a re-ranking stage (``refine="flat"`` exact vectors, ``"sq8"`` 8-bit
  vectors). Codes are ``pq_m`` bytes per vector (+ 8 bytes of id in the inverted lists), so 100M vectors
  fit in a few GB. ``"auto"`` uses it above 5M vectors. Trained on a random sample of the catalogue.

For ``metric="cosine"`` vectors (catalogue and queries) are L2-normalised before they reach faiss, so the
inner product *is* the cosine similarity; ``metric="inner_product"`` uses the vectors as given.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..data.records import InvalidDataError, check_unique_ids
from .inputs import as_ids, as_positions, check_k, row_label

__all__ = ["VectorIndex", "SearchResult", "IndexFileError", "KINDS", "METRICS",
           "AUTO_FLAT_MAX", "AUTO_HNSW_MAX"]

KINDS = ("auto", "flat", "hnsw", "ivfpq")
METRICS = ("cosine", "inner_product")
REFINES = (None, "flat", "sq8")
# "auto" thresholds (number of catalogue vectors); see the module docstring for why.
AUTO_FLAT_MAX = 100_000
AUTO_HNSW_MAX = 5_000_000

INDEX_FILE, CATALOGUE_FILE, META_FILE = "index.faiss", "catalogue.parquet", "meta.json"
FORMAT_VERSION = 1
# Vectors are normalised and added in chunks so fitting needs the index plus one chunk of memory,
# not a second full copy of the catalogue.
_CHUNK = 65_536


class IndexFileError(InvalidDataError, FileNotFoundError):
    """A saved index directory lacks a file (a ValueError that is also a FileNotFoundError)."""


@dataclass
class SearchResult:
    """Top-k neighbours of Q queries, best first.

    ``ids`` (Q, k) str, ``similarity`` (Q, k) float32 (cosine for metric="cosine"; approximate for
    ivfpq without refine), ``indices`` (Q, k) int64 row numbers in the fitted catalogue, ``ra``/``dec``
    (Q, k) float64 degrees of the neighbours, or None when the index was fitted without positions.
    When fewer than k neighbours exist (k > catalogue size, or too many excluded) the row is padded
    with id "", similarity NaN, index -1 and NaN positions.
    """

    ids: np.ndarray
    similarity: np.ndarray
    indices: np.ndarray
    ra: np.ndarray | None = None
    dec: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


class VectorIndex:
    """Nearest-neighbour index over an embedding catalogue (scikit-learn style: ``fit`` then ``search``).

    Parameters
    ----------
    kind : "auto", "flat", "hnsw" or "ivfpq" (see module docstring; "auto" picks by catalogue size).
    metric : "cosine" (vectors L2-normalised; similarity = cosine) or "inner_product".
    hnsw_m : HNSW graph degree; more = better recall, more memory and slower build.
    ef_search : HNSW search beam width (raised to the number of neighbours fetched when smaller).
    ef_construction : HNSW build beam width. Defaults M=32, efConstruction=40, efSearch=32 were chosen
        with bench/bench_index.py (recall against build and query time: BENCHMARKS.md).
    nlist : IVF lists; default ~4 sqrt(N) rounded to a power of two (and <= N / 39).
    pq_m : PQ sub-quantisers = bytes per code; must divide the dimension. Default: the largest divisor
        of D that is <= min(D // 4, 64).
    nprobe : IVF lists visited per query.
    opq : rotate with OPQ before IVF-PQ (better codes, slower training).
    refine : None, "flat" or "sq8": re-rank ``refine_k_factor`` x k IVF-PQ candidates with exact
        (4 D bytes/vector) or 8-bit (D bytes/vector) copies of the vectors.
    train_size : vectors sampled to train IVF-PQ; default min(N, max(40 nlist, 65536)): k-means needs
        ~40 points per list, and more only costs build time (the sample is 164k at 1M vectors).
    seed : seed of the training sample and of the k-means of IVF-PQ.

    Fitted attributes: ``index_`` (faiss index), ``kind_``, ``dim_``, ``ids_`` (N,) str, ``ra_``/``dec_``
    (N,) float64 or None, ``modality_``, ``metadata_`` (dict).
    """

    def __init__(self, kind: str = "auto", metric: str = "cosine", hnsw_m: int = 32, ef_search: int = 32,
                 ef_construction: int = 40, nlist: int | None = None, pq_m: int | None = None,
                 nprobe: int = 32, opq: bool = False, refine: str | None = None,
                 refine_k_factor: float = 4.0, train_size: int | None = None, seed: int = 0):
        self.kind, self.metric, self.hnsw_m, self.ef_search = kind, metric, hnsw_m, ef_search
        self.ef_construction, self.nlist, self.pq_m, self.nprobe = ef_construction, nlist, pq_m, nprobe
        self.opq, self.refine, self.refine_k_factor = opq, refine, refine_k_factor
        self.train_size, self.seed = train_size, seed
        self._check_params()

    # ------------------------------------------------------------------ parameters
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (as scikit-learn's ``get_params``)."""
        return {name: getattr(self, name) for name in
                ("kind", "metric", "hnsw_m", "ef_search", "ef_construction", "nlist", "pq_m", "nprobe",
                 "opq", "refine", "refine_k_factor", "train_size", "seed")}

    def _check_params(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; expected one of {KINDS}")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {METRICS}")
        if self.refine not in REFINES:
            raise ValueError(f"unknown refine {self.refine!r}; expected one of {REFINES}")
        for name in ("hnsw_m", "ef_search", "ef_construction", "nprobe"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("nlist", "pq_m", "train_size"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)}")
        if self.refine_k_factor < 1:
            raise ValueError(f"refine_k_factor must be >= 1, got {self.refine_k_factor}")

    # ------------------------------------------------------------------ fit
    def fit(self, embeddings: np.ndarray, ids: Sequence[str] | np.ndarray, ra: np.ndarray | None = None,
            dec: np.ndarray | None = None, modality: str = "image",
            metadata: Mapping[str, Any] | None = None) -> "VectorIndex":
        """Index ``embeddings`` (N, D) whose rows are the objects ``ids`` (N,), optionally at ``ra``/``dec`` (deg).

        ``metadata`` (JSON-serialisable) is saved with the index; its ``model_name`` / ``model_hash``
        entries identify the model that produced the embeddings. Returns self.
        """
        self._check_params()
        emb = np.asarray(embeddings)
        if emb.ndim != 2:
            raise ValueError(f"embeddings must be a 2-D (N, D) array, got shape {emb.shape}")
        if emb.shape[0] == 0 or emb.shape[1] == 0:
            raise ValueError(f"embeddings is empty (shape {emb.shape})")
        n, dim = emb.shape
        ids = as_ids(ids, n)
        check_unique_ids(ids)
        ra, dec = as_positions(ra, dec, ids)
        metadata = dict(metadata or {})
        try:
            json.dumps(metadata)
        except TypeError as exc:
            raise ValueError(f"metadata must be JSON-serialisable ({exc})") from None

        kind = self.kind
        if kind == "auto":
            kind = "flat" if n < AUTO_FLAT_MAX else "hnsw" if n <= AUTO_HNSW_MAX else "ivfpq"
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, int(self.hnsw_m), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(self.ef_construction)
        else:
            index = self._new_ivfpq(n, dim)
            sample = np.sort(np.random.default_rng(self.seed).choice(
                n, size=min(n, self.train_size or max(40 * self._nlist(n), 65_536)), replace=False))
            index.train(self._prepare(emb[sample], ids[sample], "embeddings"))

        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            index.add(self._prepare(emb[start:stop], ids[start:stop], "embeddings"))

        self.index_, self.kind_, self.dim_, self.ids_ = index, kind, dim, ids
        self.ra_, self.dec_ = ra, dec
        self.modality_, self.metadata_ = str(modality), metadata
        self._apply_search_params()
        return self

    def _nlist(self, n: int) -> int:
        if self.nlist is not None:
            if self.nlist > n:
                raise ValueError(f"nlist={self.nlist} needs at least that many vectors to train, got {n}")
            return int(self.nlist)
        # ~4 sqrt(N) lists is the usual faiss guideline; k-means wants >= 39 points per list.
        target = 2 ** round(math.log2(max(4 * math.sqrt(n), 1)))
        return int(max(1, min(target, n // 39, 65_536)))

    def _new_ivfpq(self, n: int, dim: int) -> faiss.Index:
        if n < 256:
            raise ValueError(f"kind='ivfpq' needs at least 256 vectors to train 8-bit PQ codes, got {n}")
        if self.pq_m is not None:
            pq_m = int(self.pq_m)
            if dim % pq_m:
                raise ValueError(f"pq_m={pq_m} must divide the embedding dimension {dim}")
        else:
            pq_m = max(m for m in range(1, min(max(dim // 4, 1), 64) + 1) if dim % m == 0)
        nlist = self._nlist(n)
        # "np": no polysemous training -- it only helps Hamming-filtered search (unused here) and
        # costs 10x the PQ training time.
        spec = (f"OPQ{pq_m}," if self.opq else "") + f"IVF{nlist},PQ{pq_m}x8np"
        spec += {None: "", "flat": ",RFlat", "sq8": ",Refine(SQ8)"}[self.refine]
        # For unit vectors L2 ranks exactly as cosine (|a - b|^2 = 2 - 2 cos), and PQ codes trained on
        # L2 residuals are markedly more accurate than inner-product ones (recall@10 0.77 vs 0.60 with
        # 8-byte codes in tests/search), so cosine IVF-PQ runs in L2 and converts back in _raw_search.
        metric = faiss.METRIC_L2 if self.metric == "cosine" else faiss.METRIC_INNER_PRODUCT
        index = faiss.index_factory(dim, spec, metric)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        ivf.cp.seed = ivf.pq.cp.seed = int(self.seed)
        return index

    def set_search_params(self, *, ef_search: int | None = None, nprobe: int | None = None,
                          refine_k_factor: float | None = None) -> "VectorIndex":
        """Change search-time settings (no rebuild): trade speed for recall on a fitted index."""
        for name, value in (("ef_search", ef_search), ("nprobe", nprobe), ("refine_k_factor", refine_k_factor)):
            if value is not None:
                setattr(self, name, value)
        self._check_params()
        if hasattr(self, "index_"):
            self._apply_search_params()
        return self

    def _apply_search_params(self) -> None:
        if self.kind_ == "ivfpq":
            faiss.extract_index_ivf(self.index_).nprobe = int(self.nprobe)
            if self.refine is not None:
                faiss.downcast_index(self.index_).k_factor = float(self.refine_k_factor)

    def _prepare(self, x: np.ndarray, ids: np.ndarray | None, name: str) -> np.ndarray:
        """float32, finite, and L2-normalised for cosine; errors name the offending object (or row)."""
        x = np.array(x, dtype=np.float32, order="C", copy=True)
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if bad.size:
            raise InvalidDataError(f"{bad.size} row(s) contain NaN or inf", object_id=row_label(ids, bad[0]),
                                   field=name)
        if self.metric == "cosine":
            norms = np.linalg.norm(x, axis=1)
            zero = np.flatnonzero(norms == 0)
            if zero.size:
                raise InvalidDataError(f"{zero.size} row(s) are all zeros (no direction for cosine)",
                                       object_id=row_label(ids, zero[0]), field=name)
            x /= norms[:, None]
        return x

    # ------------------------------------------------------------------ search
    def __len__(self) -> int:
        return len(self.ids_) if hasattr(self, "ids_") else 0

    def search(self, queries: np.ndarray, k: int = 10, *, exclude_ids: Sequence[str | None] | None = None,
               query_ra: np.ndarray | None = None, query_dec: np.ndarray | None = None,
               exclude_within_arcsec: float | None = None, overfetch: int | None = None) -> SearchResult:
        """The k most similar catalogue objects to each of ``queries`` (Q, D).

        ``exclude_ids`` (Q,): for query i, drop the neighbour whose id is ``exclude_ids[i]`` (the query
        itself; None drops nothing). ``exclude_within_arcsec`` with ``query_ra``/``query_dec`` (Q,) deg:
        drop neighbours closer than that on the sky (the same galaxy in another survey); needs an index
        fitted with positions. Exclusions over-fetch ``k + overfetch`` (default ``max(k, 8)``) candidates
        and fetch more for the queries that still lack k, so exactly k come back whenever the catalogue
        has k admissible objects (for approximate kinds: whenever the index finds them).
        """
        self._check_fitted()
        k = check_k(k)
        q = np.asarray(queries)
        if q.ndim == 1:
            raise ValueError(f"queries must be 2-D (Q, D); reshape a single query with queries[None], "
                             f"got shape {q.shape}")
        if q.ndim != 2 or q.shape[0] == 0:
            raise ValueError(f"queries must be a non-empty (Q, D) array, got shape {q.shape}")
        if q.shape[1] != self.dim_:
            raise ValueError(f"queries have dimension {q.shape[1]} but the index holds dimension "
                             f"{self.dim_} vectors")
        n_q = q.shape[0]
        q = self._prepare(q, None, "queries")

        exclude = None
        if exclude_ids is not None:
            exclude = np.asarray(["" if e is None else str(e) for e in exclude_ids])
            if exclude.shape != (n_q,):
                raise ValueError(f"exclude_ids must hold one id per query ({n_q}), got shape {exclude.shape}")
        qpos = None
        if exclude_within_arcsec is not None:
            # Imported here: astropy.coordinates costs seconds to import and most searches skip it.
            from astropy.coordinates import angular_separation  # Vincenty: exact at all separations

            if not exclude_within_arcsec > 0:
                raise ValueError(f"exclude_within_arcsec must be > 0, got {exclude_within_arcsec}")
            if self.ra_ is None:
                raise ValueError("exclude_within_arcsec needs an index fitted with ra and dec")
            if query_ra is None or query_dec is None:
                raise ValueError("exclude_within_arcsec needs query_ra and query_dec")
            qpos = as_positions(query_ra, query_dec, None, n=n_q)
            qpos = tuple(np.radians(p) for p in qpos)
            radius = np.radians(exclude_within_arcsec / 3600.0)

        def admissible(rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
            """Which candidates idx (len(rows), m) of queries ``rows`` survive the exclusions."""
            keep = idx >= 0
            safe = np.where(keep, idx, 0)
            if exclude is not None:
                keep &= self.ids_[safe] != exclude[rows, None]
            if qpos is not None:
                sep = angular_separation(qpos[0][rows, None], qpos[1][rows, None],
                                         np.radians(self.ra_[safe]), np.radians(self.dec_[safe]))
                keep &= ~(sep < radius)
            return keep

        if overfetch is not None and int(overfetch) < 0:
            raise ValueError(f"overfetch must be >= 0, got {overfetch}")
        filtering = exclude is not None or qpos is not None
        extra = (max(k, 8) if overfetch is None else int(overfetch)) if filtering else 0
        out, out_sim = self._search_refill(q, k, k + extra, admissible)
        found = out >= 0
        safe = np.where(found, out, 0)
        ids = np.where(found, self.ids_[safe], "")
        ra = dec = None
        if self.ra_ is not None:
            ra = np.where(found, self.ra_[safe], np.nan)
            dec = np.where(found, self.dec_[safe], np.nan)
        return SearchResult(ids=ids, similarity=out_sim, indices=out, ra=ra, dec=dec)

    def _search_refill(self, q: np.ndarray, k: int, fetch: int, admissible) -> tuple[np.ndarray, np.ndarray]:
        """Top-k admissible (index, similarity) per query, padded with (-1, NaN).

        Fetches ``fetch`` candidates, keeps the admissible ones, and fetches twice as many again for
        the queries left with fewer than k, until every query has k or the whole catalogue was fetched.
        """
        n = len(self.ids_)
        fetch = min(fetch, n)
        out = np.full((len(q), k), -1, dtype=np.int64)
        out_sim = np.full((len(q), k), np.nan, dtype=np.float32)
        todo = np.arange(len(q))
        while todo.size:
            sim, idx = self._raw_search(q[todo], fetch)
            keep = admissible(todo, idx)
            # Stable sort puts each row's kept candidates first, still in similarity order.
            order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
            kept = np.take_along_axis(keep, order, 1)
            done = (keep.sum(axis=1) >= k) | (fetch >= n)
            rows, width = todo[done], order.shape[1]  # width < k only when the catalogue is smaller
            out[rows, :width] = np.where(kept, np.take_along_axis(idx, order, 1), -1)[done]
            out_sim[rows, :width] = np.where(kept, np.take_along_axis(sim, order, 1), np.nan)[done]
            todo = todo[~done]
            fetch = min(2 * fetch, n)
        return out, out_sim

    def _raw_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        params = None
        if self.kind_ == "hnsw":
            # HNSW returns at most efSearch candidates per query; widen the beam when fetching more.
            # Per-call parameters rather than index state, so concurrent searches do not interfere.
            params = faiss.SearchParametersHNSW(efSearch=max(int(self.ef_search), k))
        sim, idx = self.index_.search(q, k, params=params)
        if self.index_.metric_type == faiss.METRIC_L2:
            sim = 1.0 - sim / 2.0  # squared L2 distance between unit vectors -> cosine
        return sim, idx

    def _check_fitted(self) -> None:
        if not hasattr(self, "index_"):
            raise RuntimeError("this VectorIndex is not fitted yet; call fit(embeddings, ids) first")

    # ------------------------------------------------------------------ persistence
    def memory_bytes(self) -> int:
        """Size of the serialised faiss index in bytes (vectors/codes + graph/lists; excludes ids)."""
        self._check_fitted()
        return int(faiss.serialize_index(self.index_).size)

    def save(self, directory: str | Path) -> Path:
        """Write ``index.faiss``, ``catalogue.parquet`` (object_id, ra, dec) and ``meta.json`` to a directory."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index_, str(directory / INDEX_FILE))
        columns = {"object_id": pa.array(self.ids_, type=pa.string())}
        if self.ra_ is not None:
            columns["ra"], columns["dec"] = pa.array(self.ra_), pa.array(self.dec_)
        pq.write_table(pa.table(columns), directory / CATALOGUE_FILE)
        meta = {
            "format_version": FORMAT_VERSION, "kind": self.kind_, "metric": self.metric, "dim": self.dim_,
            "count": len(self.ids_), "modality": self.modality_,
            "model_name": self.metadata_.get("model_name"), "model_hash": self.metadata_.get("model_hash"),
            "has_positions": self.ra_ is not None, "faiss_version": faiss.__version__,
            "params": self.get_params(), "metadata": self.metadata_,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "VectorIndex":
        """Read an index written by :meth:`save`; checks the three files agree with each other."""
        directory = Path(directory)
        for name in (META_FILE, INDEX_FILE, CATALOGUE_FILE):
            if not (directory / name).is_file():
                raise IndexFileError("missing; not a saved VectorIndex directory", source=directory / name)
        try:
            meta = json.loads((directory / META_FILE).read_text())
            params = meta["params"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise InvalidDataError(f"unreadable index metadata ({exc!r})", source=directory / META_FILE) from None
        self = cls(**params)
        self.index_ = faiss.read_index(str(directory / INDEX_FILE))
        table = pq.read_table(directory / CATALOGUE_FILE)
        self.ids_ = np.asarray(table.column("object_id").to_pylist(), dtype=str)
        self.ra_ = self.dec_ = None
        if "ra" in table.column_names:
            self.ra_ = table.column("ra").to_numpy().astype(np.float64)
            self.dec_ = table.column("dec").to_numpy().astype(np.float64)
        self.kind_, self.dim_ = meta["kind"], int(meta["dim"])
        self.modality_, self.metadata_ = meta["modality"], meta.get("metadata", {})
        if not (self.index_.ntotal == len(self.ids_) == meta["count"]) or self.index_.d != self.dim_:
            raise InvalidDataError(
                f"inconsistent files: index has {self.index_.ntotal} vectors of dimension {self.index_.d}, "
                f"catalogue has {len(self.ids_)} ids, meta.json says {meta['count']} x {self.dim_}",
                source=directory)
        self._apply_search_params()
        return self
