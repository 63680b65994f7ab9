"""The home page's map: a seeded UMAP, computed once and cached beside the index, reused afterwards."""

import numpy as np
import pytest

from astroembed.app import catalogue_map
from astroembed.app.catalogue_map import CatalogueMap, umap_coordinates
from astroembed.app.explorer import Explorer

pytest.importorskip("umap", reason="the map needs umap-learn (astroembed[app])")


@pytest.fixture(scope="module")
def explorer(app_catalogue):
    return Explorer(app_catalogue["index"])


def test_the_map_is_computed_once_and_then_read_from_the_cache(explorer, tmp_path, monkeypatch):
    first = CatalogueMap(explorer, tmp_path)
    rows, xy = first.points()
    assert first.computed == 1 and first.cache_path().is_file()
    assert first.cache_path().parent.parent == tmp_path  # in the app's cache folder, not the index
    first.points()
    assert first.computed == 1

    def no_umap(*args, **kwargs):
        raise AssertionError("the cached map was recomputed")

    monkeypatch.setattr(catalogue_map, "umap_coordinates", no_umap)
    second = CatalogueMap(explorer, tmp_path)  # a new server over the same index and cache
    rows2, xy2 = second.points()
    assert second.computed == 0
    assert np.array_equal(rows2, rows) and np.array_equal(xy2, xy)
    assert second.anomaly()["anomaly_rank"].tolist() == first.anomaly()["anomaly_rank"].tolist()


def test_a_cached_map_of_another_index_is_recomputed(explorer, tmp_path):
    fresh = CatalogueMap(explorer, tmp_path)
    _, xy = fresh.points()
    path = fresh.cache_path()
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    arrays["fingerprint"] = np.array("0" * 64)  # as if written for other vectors
    arrays["xy"] = arrays["xy"] + 100.0
    np.savez(path, **arrays)
    again = CatalogueMap(explorer, tmp_path)
    _, xy_again = again.points()
    assert again.computed == 1
    np.testing.assert_array_equal(xy_again, xy)


def test_coordinates_are_deterministic_for_a_seed(explorer):
    _, _, _, vectors = explorer.search_engine.catalogue(explorer.modalities[0])
    a = umap_coordinates(vectors, seed=3)
    b = umap_coordinates(vectors, seed=3)
    assert a.shape == (len(vectors), 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, umap_coordinates(vectors, seed=4))
    # the in-memory map (no cache folder) is the same function of the same seed
    _, xy = CatalogueMap(explorer, cache_dir=None, seed=3).points()
    np.testing.assert_allclose(xy, a, atol=1e-6)


def test_tiny_catalogues_still_get_a_map():
    rng = np.random.default_rng(0)
    assert np.array_equal(umap_coordinates(rng.normal(size=(2, 8))), np.zeros((2, 2), np.float32))
    xy = umap_coordinates(rng.normal(size=(6, 8)))
    assert xy.shape == (6, 2) and np.isfinite(xy).all()
