"""The home page's 2-D map of the catalogue: one point per object, coloured by a label or by its anomaly score.

The projection is UMAP (umap-learn; cosine metric on the embeddings of the first indexed modality, seeded,
single-threaded so a seed gives the same map every time), the same settings as the evaluation report's map
(:func:`astroembed.evaluate.plots.umap_map`). UMAP separates clusters that a linear projection overlaps,
but costs tens of seconds (numba compilation, then the fit), so the map is computed once and kept in the
app's cache folder beside the index, like the thumbnails; ``astroembed serve`` computes it before it starts
answering. The cached file records a SHA-256 fingerprint of the mapped ids and vectors: a rebuilt index
gets a new map, an unchanged one never recomputes it.

Each mapped object also gets the evaluation's anomaly score (:func:`astroembed.evaluate.anomaly.rank_catalog`:
mean cosine distance to the k nearest embeddings, cross-fitted halves, and its conformal p-value), ranked
among the mapped objects. At most ``MAX_POINTS`` objects are drawn (a seeded random subset), so the page
stays light and the map stays affordable for any catalogue size; for a larger catalogue the scores are
those of the subset, a coarser density estimate than ``astroembed anomalies`` over the whole catalogue.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import numpy as np

from ..data.records import InvalidDataError
from ..files import atomic_path
from .explorer import Explorer, NotFoundError, json_value

__all__ = ["CatalogueMap", "MAX_POINTS", "ANOMALY_LABEL", "umap_coordinates"]

MAX_POINTS = 5000
ANOMALY_LABEL = "anomaly score"  # the colouring offered next to the survey's labels
_ANOMALY_NEIGHBOURS = 10
_MAP_FORMAT = 1  # bump when the cached file's contents change meaning
log = logging.getLogger("astroembed.app")


def umap_coordinates(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) UMAP coordinates of embeddings, cosine metric, reproducible for a seed.

    Parameters
    ----------
    vectors : (n, d) embeddings.
    seed : UMAP's ``random_state``; with it UMAP runs single-threaded and is deterministic.

    Returns
    -------
    float32 array of shape (n, 2); all zeros for fewer than 3 objects (no neighbourhood to embed).
    """
    import umap

    n = len(vectors)
    if n < 3:
        return np.zeros((n, 2), np.float32)
    # UMAP needs fewer neighbours than objects; the spectral start needs a few more objects than that.
    n_neighbors = min(15, n - 1)
    reducer = umap.UMAP(n_neighbors=n_neighbors, metric="cosine", random_state=seed, n_jobs=1,
                        init="spectral" if n > n_neighbors + 2 else "random")
    return reducer.fit_transform(np.asarray(vectors, np.float32)).astype(np.float32)


class CatalogueMap:
    """Map coordinates, anomaly scores and label colours of an :class:`Explorer`'s catalogue.

    Parameters
    ----------
    explorer : the catalogue.
    cache_dir : folder for the computed map (the app's cache folder); None keeps it in memory only.
    seed : seeds the subset drawn for large catalogues, UMAP and the anomaly scores' halves.
    """

    def __init__(self, explorer: Explorer, cache_dir=None, seed: int = 0):
        self.explorer = explorer
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.seed = seed
        self._lock = threading.Lock()
        self._map: dict[str, np.ndarray] | None = None
        self._labels: dict[str, np.ndarray] = {}
        self.computed = 0  # how many times this process computed (rather than loaded) the map

    @property
    def modality(self) -> str:
        return self.explorer.modalities[0]

    def cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / "map" / f"umap-{self.modality}-seed{self.seed}.npz"

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows into the catalogue, (n, 2) map coordinates)."""
        mapped = self._mapped()
        return mapped["rows"], mapped["xy"]

    def anomaly(self) -> dict[str, np.ndarray]:
        """Anomaly columns of the mapped objects (``knn_distance``, ``ood_pvalue``, ``anomaly_rank``);
        empty when there are too few objects to score."""
        mapped = self._mapped()
        return {k: mapped[k] for k in ("knn_distance", "ood_pvalue", "anomaly_rank") if k in mapped}

    def _mapped(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._map is None:
                self._map = self._load_or_compute()
            return self._map

    def _sample(self) -> tuple[np.ndarray, np.ndarray]:
        ids, _, _, vectors = self.explorer.search_engine.catalogue(self.modality)
        n = len(ids)
        keep = np.arange(n) if n <= MAX_POINTS else np.sort(
            np.random.default_rng(self.seed).choice(n, MAX_POINTS, replace=False))
        return ids[keep], np.asarray(vectors[keep], np.float32)

    def _load_or_compute(self) -> dict[str, np.ndarray]:
        ids, vectors = self._sample()
        digest = hashlib.sha256()
        for part in (str(_MAP_FORMAT), self.modality, str(self.seed), "\n".join(ids.tolist())):
            digest.update(part.encode("utf-8"))
        digest.update(np.ascontiguousarray(vectors).tobytes())
        fingerprint = digest.hexdigest()
        path = self.cache_path()
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as stored:  # never unpickle a file
                if str(stored["fingerprint"]) == fingerprint:
                    cached = {k: stored[k] for k in stored.files if k != "fingerprint"}
                    cached["rows"] = self._rows(ids)
                    return cached
            log.info("the cached map %s is of another index; recomputing it", path)
        computed = self._compute(vectors)
        self.computed += 1
        if path is not None:
            _write_npz(path, fingerprint=np.array(fingerprint), **computed)
        computed["rows"] = self._rows(ids)
        return computed

    def _compute(self, vectors: np.ndarray) -> dict[str, np.ndarray]:
        from ..evaluate.anomaly import rank_catalog

        log.info("computing the catalogue map: UMAP of %d %s embeddings (once; then cached)",
                 len(vectors), self.modality)
        out = {"xy": umap_coordinates(vectors, self.seed)}
        if len(vectors) > 2 * _ANOMALY_NEIGHBOURS:  # each cross-fitted half needs k neighbours
            scores = rank_catalog(vectors, k=_ANOMALY_NEIGHBOURS, seed=self.seed)
            out.update({k: scores[k] for k in ("knn_distance", "ood_pvalue", "anomaly_rank")})
        return out

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        return np.array([self.explorer.row_of(oid) for oid in ids.tolist()], dtype=np.int64)

    def label_values(self, label: str) -> np.ndarray:
        """Values of one survey label in catalogue row order (None where unknown)."""
        survey = self.explorer.survey
        if survey is None:
            raise NotFoundError("no survey is loaded, so there are no labels", field="label")
        if label not in survey.label_columns:
            raise NotFoundError(f"no such label; available: {survey.label_columns + [ANOMALY_LABEL]}",
                                field="label")
        with self._lock:
            if label not in self._labels:
                with self.explorer._survey_lock:
                    values = survey.labels([label])[label]
                index_of = {oid: i for i, oid in enumerate(survey.object_ids.tolist())}
                rows = np.array([index_of.get(oid, -1) for oid in self.explorer.ids.tolist()])
                self._labels[label] = np.where(rows >= 0, values[np.maximum(rows, 0)], None)
            return self._labels[label]

    def as_json(self, label: str | None = None) -> dict:
        """The map for the page: ids and coordinates, and the chosen colouring's values.

        ``label`` is a survey label or :data:`ANOMALY_LABEL` (the k-NN distance; higher = more unusual).
        """
        rows, xy = self.points()
        out = {"projection": "UMAP", "modality": self.modality, "n_total": len(self.explorer),
               "object_id": self.explorer.ids[rows].tolist(),
               "x": np.round(xy[:, 0], 5).tolist(), "y": np.round(xy[:, 1], 5).tolist()}
        if label == ANOMALY_LABEL:
            scores = self.anomaly()
            if not scores:
                raise NotFoundError(f"too few objects ({len(rows)}) for anomaly scores", field="label")
            out.update(label=label, numeric=True, values=np.round(scores["knn_distance"], 6).tolist(),
                       ood_pvalue=np.round(scores["ood_pvalue"], 6).tolist())
        elif label:
            values = self.label_values(label)[rows]
            out["label"] = label
            out["values"] = [json_value(_scalar(v)) for v in values]
            out["numeric"] = all(v is None or isinstance(v, (int, float)) for v in out["values"])
        return out


def _write_npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole or not at all: a concurrent reader sees no map or the whole map, never half of it.
    with atomic_path(path, fsync=False) as tmp, open(tmp, "wb") as f:  # a handle: np.savez would add ".npz"
        np.savez(f, **arrays)


def _scalar(v):
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        raise InvalidDataError("label is not a scalar", field="label")
    return v
