"""The home page's 2-D map of the catalogue: one point per object, coloured by a label, click to open.

The projection is PCA (scikit-learn) of the unit embeddings of the first indexed modality. UMAP would
separate clusters better, but it costs tens of seconds of JIT compilation and minutes at a million
objects, and the evaluation reports that will provide one are not in the package yet; PCA is exact,
deterministic and takes a second. At most ``MAX_POINTS`` objects are drawn (a seeded random subset), so
the page stays light for any catalogue size.
"""

from __future__ import annotations

import threading

import numpy as np

from ..data.records import InvalidDataError
from .explorer import Explorer, NotFoundError, _json_value

__all__ = ["CatalogueMap", "MAX_POINTS"]

MAX_POINTS = 5000


class CatalogueMap:
    """Lazily computed map coordinates and label colours of an :class:`Explorer`'s catalogue."""

    def __init__(self, explorer: Explorer, seed: int = 0):
        self.explorer = explorer
        self.seed = seed
        self._lock = threading.Lock()
        self._points: tuple[np.ndarray, np.ndarray] | None = None
        self._labels: dict[str, np.ndarray] | None = None

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows into the catalogue, (n, 2) map coordinates)."""
        with self._lock:
            if self._points is None:
                self._points = self._project()
            return self._points

    def _project(self) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.decomposition import PCA

        engine = self.explorer.search_engine
        modality = self.explorer.modalities[0]
        ids, _, _, vectors = engine.catalogue(modality)
        n = len(ids)
        keep = np.arange(n) if n <= MAX_POINTS else np.sort(
            np.random.default_rng(self.seed).choice(n, MAX_POINTS, replace=False))
        x = vectors[keep] / np.linalg.norm(vectors[keep], axis=1, keepdims=True)
        xy = PCA(n_components=2, random_state=self.seed).fit_transform(x) if len(x) > 2 else np.zeros((len(x), 2))
        rows = np.array([self.explorer.row_of(oid) for oid in ids[keep]], dtype=np.int64)
        return rows, xy.astype(np.float32)

    def label_values(self, label: str) -> np.ndarray:
        """Values of one survey label in catalogue row order (NaN / "" where unknown)."""
        survey = self.explorer.survey
        if survey is None:
            raise NotFoundError("no survey is loaded, so there are no labels", field="label")
        if label not in survey.label_columns:
            raise NotFoundError(f"no such label; available: {survey.label_columns}", field="label")
        with self._lock:
            if self._labels is None:
                self._labels = {}
            if label not in self._labels:
                with self.explorer._survey_lock:
                    values = survey.labels([label])[label]
                index_of = {oid: i for i, oid in enumerate(survey.object_ids.tolist())}
                rows = np.array([index_of.get(oid, -1) for oid in self.explorer.ids.tolist()])
                filled = np.where(rows >= 0, values[np.maximum(rows, 0)], None)
                self._labels[label] = filled
            return self._labels[label]

    def as_json(self, label: str | None = None) -> dict:
        rows, xy = self.points()
        out = {"projection": "PCA", "modality": self.explorer.modalities[0], "n_total": len(self.explorer),
               "object_id": self.explorer.ids[rows].tolist(),
               "x": np.round(xy[:, 0], 5).tolist(), "y": np.round(xy[:, 1], 5).tolist()}
        if label:
            values = self.label_values(label)[rows]
            out["label"] = label
            out["values"] = [_json_value(_scalar(v)) for v in values]
            out["numeric"] = all(v is None or isinstance(v, (int, float)) for v in out["values"])
        return out


def _scalar(v):
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        raise InvalidDataError("label is not a scalar", field="label")
    return v
