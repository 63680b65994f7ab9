"""Do nearest neighbours in embedding space share physics? Redshift agreement of query-neighbour pairs."""

from __future__ import annotations

import numpy as np

from ..search.index import VectorIndex
from .metrics import redshift_residuals


def neighbour_redshift_report(query_vectors: np.ndarray, query_ids: np.ndarray, query_z: np.ndarray,
                              target_vectors: np.ndarray, target_ids: np.ndarray, target_z: np.ndarray,
                              k: int = 10, seed: int = 0) -> dict[str, float]:
    """Median |dz|/(1+z) between each query and its top-k neighbours (the query itself excluded), and
    between the same queries and k random targets: the baseline a useless embedding would give."""
    index = VectorIndex(kind="flat").fit(target_vectors, target_ids)
    result = index.search(query_vectors, k, exclude_ids=list(query_ids))
    neighbour_z = np.asarray(target_z)[result.indices]
    dz = np.abs(redshift_residuals(neighbour_z, np.repeat(np.asarray(query_z)[:, None], k, axis=1)))
    rng = np.random.default_rng(seed)
    random_z = np.asarray(target_z)[rng.integers(0, len(target_z), size=(len(query_z), k))]
    dz_random = np.abs(redshift_residuals(random_z, np.repeat(np.asarray(query_z)[:, None], k, axis=1)))
    return {"median_dz_neighbours": float(np.median(dz)), "median_dz_random": float(np.median(dz_random)),
            "k": k, "n_queries": len(query_z)}
