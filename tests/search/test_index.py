"""VectorIndex and neighbour tables against brute-force NumPy / astropy references."""

from __future__ import annotations

import json
from pathlib import Path

import astropy.units as u
import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord

from astroembed.data.records import InvalidDataError
from astroembed.search import index as index_module
from astroembed.search.index import IndexFileError, VectorIndex
from astroembed.search.neighbours import neighbour_table, write_neighbour_table


@pytest.fixture(autouse=True, scope="module")
def one_faiss_thread():
    # The test machine is shared: OpenMP threads spinning on busy cores make faiss 10x slower, and one
    # thread also makes HNSW construction deterministic.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def brute_force(queries, catalogue, k, cosine=True):
    """Independent reference: full similarity matrix, then a stable sort of each row."""
    q, x = queries.astype(np.float64), catalogue.astype(np.float64)
    if cosine:
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = q @ x.T
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sim, order, 1)


def mixture(n, dim=32, latent=16, components=300, seed=0):
    """Clustered vectors like real embeddings: a Gaussian mixture in a subspace plus small noise."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(np.random.default_rng(99).standard_normal((dim, latent)))
    centres = np.random.default_rng(98).standard_normal((components, latent))
    z = centres[rng.integers(components, size=n)] + 0.4 * rng.standard_normal((n, latent))
    return (z @ basis.T + 0.05 * rng.standard_normal((n, dim))).astype(np.float32)


def make_ids(n, prefix="g"):
    return np.array([f"{prefix}{i:05d}" for i in range(n)])


def recall(found, truth):
    return np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth)])


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(1)
    return rng.standard_normal((2000, 24)).astype(np.float32), rng.standard_normal((40, 24)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered():
    return mixture(12_000), mixture(300, seed=1)


# --------------------------------------------------------------------------- exact search
@pytest.mark.parametrize("metric", ["cosine", "inner_product"])
def test_flat_equals_brute_force(random_data, metric):
    x, q = random_data
    ids = make_ids(len(x))
    res = VectorIndex(kind="flat", metric=metric).fit(x, ids).search(q, 10)
    order, sim = brute_force(q, x, 10, cosine=metric == "cosine")
    np.testing.assert_array_equal(res.indices, order)
    np.testing.assert_array_equal(res.ids, ids[order])
    np.testing.assert_allclose(res.similarity, sim, rtol=1e-5, atol=1e-5)
    assert res.similarity.dtype == np.float32 and res.ra is None


def test_k_larger_than_catalogue_pads(random_data):
    x, q = random_data
    res = VectorIndex(kind="flat").fit(x[:5], make_ids(5)).search(q[:3], 8)
    assert res.ids.shape == (3, 8)
    assert np.all(res.indices[:, :5] >= 0) and np.all(res.indices[:, 5:] == -1)
    assert np.all(res.ids[:, 5:] == "") and np.all(np.isnan(res.similarity[:, 5:]))
    np.testing.assert_array_equal(np.sort(res.indices[:, :5], axis=1), np.tile(np.arange(5), (3, 1)))


# --------------------------------------------------------------------------- approximate search
@pytest.fixture(scope="module")
def exact_clustered(clustered):
    x, q = clustered
    return VectorIndex(kind="flat").fit(x, make_ids(len(x))).search(q, 10).indices


APPROXIMATE = {  # name: (parameters, recall@10 threshold; measured values in comments)
    "hnsw": (dict(kind="hnsw", hnsw_m=16, ef_search=64), 0.95),  # 1.00
    "ivfpq": (dict(kind="ivfpq", nlist=64, pq_m=8, nprobe=16), 0.70),  # 0.77: 8-byte codes are lossy
    "ivfpq_refine": (dict(kind="ivfpq", nlist=64, pq_m=8, nprobe=16, refine="flat"), 0.95),  # 1.00
}


@pytest.fixture(scope="module")
def approximate(clustered):
    x, _ = clustered
    return {name: VectorIndex(**params).fit(x, make_ids(len(x))) for name, (params, _) in APPROXIMATE.items()}


@pytest.mark.parametrize("name", APPROXIMATE)
def test_approximate_recall_on_clustered_data(clustered, exact_clustered, approximate, name):
    params, threshold = APPROXIMATE[name]
    index = approximate[name]
    assert index.kind_ == params["kind"]
    assert recall(index.search(clustered[1], 10).indices, exact_clustered) >= threshold


def test_ivfpq_compresses(clustered, approximate):
    # 8-byte PQ code + 8-byte list id per vector, vs 128 bytes of float32: < a fifth of the raw size.
    assert approximate["ivfpq"].memory_bytes() < clustered[0].nbytes / 5
    assert approximate["hnsw"].memory_bytes() > clustered[0].nbytes


def test_auto_kind_follows_catalogue_size(random_data, monkeypatch):
    x, _ = random_data
    ids = make_ids(len(x))
    assert VectorIndex().fit(x, ids).kind_ == "flat"
    monkeypatch.setattr(index_module, "AUTO_FLAT_MAX", 1000)
    assert VectorIndex().fit(x, ids).kind_ == "hnsw"
    monkeypatch.setattr(index_module, "AUTO_HNSW_MAX", 1000)
    assert VectorIndex(nlist=16, pq_m=4).fit(x, ids).kind_ == "ivfpq"


# --------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("params", [dict(kind="flat"), dict(kind="hnsw", hnsw_m=8),
                                    dict(kind="ivfpq", nlist=32, pq_m=8, nprobe=4, refine="sq8")])
def test_save_load_round_trip(clustered, tmp_path, params):
    x, q = clustered
    x = x[:4000]
    ids = make_ids(len(x))
    rng = np.random.default_rng(0)
    ra, dec = rng.uniform(0, 360, len(x)), rng.uniform(-60, 60, len(x))
    index = VectorIndex(**params).fit(x, ids, ra=ra, dec=dec, modality="spectrum",
                                      metadata={"model_name": "specformer-small", "model_hash": "abc123"})
    before = index.search(q, 7)
    index.save(tmp_path / "idx")
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["catalogue.parquet", "index.faiss",
                                                                     "meta.json"]
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert (meta["kind"], meta["metric"], meta["dim"], meta["count"], meta["modality"]) == (
        params["kind"], "cosine", 32, 4000, "spectrum")
    assert (meta["model_name"], meta["model_hash"]) == ("specformer-small", "abc123")
    assert pq.read_table(tmp_path / "idx" / "catalogue.parquet").column("object_id").to_pylist() == ids.tolist()

    loaded = VectorIndex.load(tmp_path / "idx")
    after = loaded.search(q, 7)
    assert loaded.get_params() == index.get_params() and loaded.metadata_ == index.metadata_
    for field in ("ids", "similarity", "indices", "ra", "dec"):
        np.testing.assert_array_equal(getattr(after, field), getattr(before, field))


@pytest.mark.parametrize("missing", ["meta.json", "index.faiss", "catalogue.parquet"])
def test_load_missing_file_names_it(random_data, tmp_path, missing):
    x, _ = random_data
    VectorIndex(kind="flat").fit(x, make_ids(len(x))).save(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(IndexFileError, match=missing) as info:
        VectorIndex.load(tmp_path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)


def test_load_rejects_inconsistent_files(random_data, tmp_path):
    x, _ = random_data
    VectorIndex(kind="flat").fit(x, make_ids(len(x))).save(tmp_path / "a")
    VectorIndex(kind="flat").fit(x[:10], make_ids(10)).save(tmp_path / "b")
    (tmp_path / "b" / "catalogue.parquet").replace(tmp_path / "a" / "catalogue.parquet")
    with pytest.raises(ValueError, match="inconsistent"):
        VectorIndex.load(tmp_path / "a")


# --------------------------------------------------------------------------- exclusions
@pytest.fixture(scope="module")
def twins():
    """Real SDSS positions (kcorrect's test catalogue); each galaxy catalogued twice ~1 arcsec apart."""
    kcorrect = pytest.importorskip("kcorrect")
    from astropy.table import Table
    path = Path(kcorrect.__file__).parent / "data" / "test" / "gst_tests_small.fits"
    if not path.is_file():
        pytest.skip(f"kcorrect test catalogue not found at {path}")
    cat = Table.read(path)[:300]
    rng = np.random.default_rng(3)
    base = SkyCoord(np.asarray(cat["RA"], float) * u.deg, np.asarray(cat["DEC"], float) * u.deg)
    twin = base.directional_offset_by(rng.uniform(0, 360, len(base)) * u.deg,
                                      rng.uniform(0.3, 1.5, len(base)) * u.arcsec)
    emb = mixture(len(base), components=20, seed=4)
    twin_emb = emb + 0.01 * rng.standard_normal(emb.shape).astype(np.float32)
    x = np.concatenate([emb, twin_emb])
    ra = np.concatenate([base.ra.deg, twin.ra.deg])
    dec = np.concatenate([base.dec.deg, twin.dec.deg])
    ids = np.concatenate([make_ids(len(base), "a"), make_ids(len(base), "b")])
    return x, ids, ra, dec


def test_exclude_within_arcsec_matches_skycoord(twins):
    x, ids, ra, dec = twins
    n_q, k, radius = 60, 10, 2.0
    index = VectorIndex(kind="flat").fit(x, ids, ra=ra, dec=dec)
    plain = index.search(x[:n_q], k, exclude_ids=ids[:n_q])
    assert np.all(plain.ids[:, 0] == np.char.replace(ids[:n_q], "a", "b"))  # the twin is the best match
    res = index.search(x[:n_q], k, query_ra=ra[:n_q], query_dec=dec[:n_q], exclude_within_arcsec=radius)

    order, _ = brute_force(x[:n_q], x, len(x))
    sep = SkyCoord(ra[:n_q, None] * u.deg, dec[:n_q, None] * u.deg).separation(
        SkyCoord(ra[order] * u.deg, dec[order] * u.deg)).arcsec
    expected = np.array([row[s >= radius][:k] for row, s in zip(order, sep)])
    np.testing.assert_array_equal(res.indices, expected)
    np.testing.assert_allclose(res.ra, ra[expected])
    np.testing.assert_allclose(res.dec, dec[expected])


def test_exclusion_refills_to_exactly_k_in_a_crowd():
    # 60 near-identical vectors within 2 arcsec of the query outrank everything else: the first
    # over-fetch (k + max(k, 8) = 20) is all excluded, so the search must fetch again.
    rng = np.random.default_rng(5)
    crowd = np.ones((60, 8), np.float32) + 0.01 * rng.standard_normal((60, 8)).astype(np.float32)
    others = rng.standard_normal((200, 8)).astype(np.float32)
    x = np.concatenate([crowd, others])
    ra = np.concatenate([150 + rng.uniform(-1, 1, 60) / 3600, rng.uniform(0, 360, 200)])
    dec = np.concatenate([2 + rng.uniform(-1, 1, 60) / 3600, rng.uniform(-80, 80, 200)])
    index = VectorIndex(kind="flat").fit(x, make_ids(len(x)), ra=ra, dec=dec)
    res = index.search(np.ones((1, 8), np.float32), 10, query_ra=[150.0], query_dec=[2.0],
                       exclude_within_arcsec=3.0)
    assert np.all(res.indices >= 60) and np.all(res.indices[0] < len(x))
    order, _ = brute_force(np.ones((1, 8), np.float32), others, 10)
    np.testing.assert_array_equal(res.indices[0], order[0] + 60)


def test_exclude_ids_drops_the_query_itself(random_data):
    x, _ = random_data
    ids = make_ids(len(x))
    res = VectorIndex(kind="flat").fit(x, ids).search(x[:30], 5, exclude_ids=ids[:30])
    order, _ = brute_force(x[:30], x, 6)
    assert np.all(order[:, 0] == np.arange(30))  # without exclusion each object finds itself first
    np.testing.assert_array_equal(res.indices, order[:, 1:])


# --------------------------------------------------------------------------- neighbour tables
def test_neighbour_table_equals_brute_force(random_data, tmp_path):
    x, _ = random_data
    x, ids, k = x[:300], make_ids(300), 5
    index = VectorIndex(kind="flat").fit(x, ids)
    table = neighbour_table(index, x, ids, k, batch_size=64)
    assert table.column_names == ["object_id", "rank", "neighbour_id", "similarity"]
    assert table.num_rows == 300 * k
    rows = table.to_pydict()
    assert not any(a == b for a, b in zip(rows["object_id"], rows["neighbour_id"]))
    order, sim = brute_force(x, x, k + 1)
    np.testing.assert_array_equal(np.array(rows["object_id"]).reshape(300, k), np.repeat(ids[:, None], k, 1))
    np.testing.assert_array_equal(np.array(rows["rank"]).reshape(300, k), np.tile(np.arange(1, k + 1), (300, 1)))
    np.testing.assert_array_equal(np.array(rows["neighbour_id"]).reshape(300, k), ids[order[:, 1:]])
    np.testing.assert_allclose(np.array(rows["similarity"]).reshape(300, k), sim[:, 1:], atol=1e-5)

    path = write_neighbour_table(index, x, ids, k, tmp_path / "nn" / "neighbours.parquet", batch_size=64)
    assert pq.read_table(path).equals(table)


# --------------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def small_index(random_data):
    x, _ = random_data
    return VectorIndex(kind="flat").fit(x, make_ids(len(x)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_embedding_names_object(random_data, bad):
    x, _ = random_data
    x = x[:50].copy()
    x[17, 3] = bad
    with pytest.raises(InvalidDataError, match="g00017.*NaN or inf"):
        VectorIndex(kind="flat").fit(x, make_ids(50))


def test_zero_vector_rejected_for_cosine(random_data):
    x = random_data[0][:20].copy()
    x[4] = 0
    with pytest.raises(InvalidDataError, match="g00004.*zeros"):
        VectorIndex(kind="flat").fit(x, make_ids(20))


@pytest.mark.parametrize("embeddings, ids, match", [
    (np.zeros((0, 8), np.float32), [], "empty"),
    (np.ones((3, 8), np.float32), ["a", "b", "a"], "duplicated object ids: \\['a'\\]"),
    (np.ones((3, 8), np.float32), ["a", "b"], "one id per embedding row"),
    (np.ones(8, np.float32), ["a"], "2-D"),
])
def test_bad_fit_inputs(embeddings, ids, match):
    with pytest.raises(ValueError, match=match):
        VectorIndex(kind="flat").fit(embeddings, ids)


def test_unknown_kind_and_metric():
    with pytest.raises(ValueError, match="unknown kind 'annoy'"):
        VectorIndex(kind="annoy")
    with pytest.raises(ValueError, match="unknown metric 'l1'"):
        VectorIndex(metric="l1")


def test_query_dimension_mismatch(small_index):
    with pytest.raises(ValueError, match="dimension 16 but the index holds dimension 24"):
        small_index.search(np.ones((2, 16), np.float32), 3)


def test_non_finite_query(small_index):
    q = np.ones((3, 24), np.float32)
    q[2, 0] = np.nan
    with pytest.raises(InvalidDataError, match="row 2.*queries"):
        small_index.search(q, 3)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k(small_index, k):
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        small_index.search(np.ones((1, 24), np.float32), k)


def test_exclusion_argument_errors(small_index):
    q = np.ones((2, 24), np.float32)
    with pytest.raises(ValueError, match="fitted with ra and dec"):
        small_index.search(q, 3, query_ra=[1, 2], query_dec=[1, 2], exclude_within_arcsec=1.0)
    with pytest.raises(ValueError, match="one id per query"):
        small_index.search(q, 3, exclude_ids=["g00001"])


def test_bad_positions_name_object(random_data):
    x = random_data[0][:5]
    with pytest.raises(InvalidDataError, match="g00002.*dec"):
        VectorIndex(kind="flat").fit(x, make_ids(5), ra=np.zeros(5), dec=np.array([0, 0, 95, 0, 0.]))


def test_ivfpq_parameter_errors(random_data):
    x = random_data[0]
    with pytest.raises(ValueError, match="pq_m=5 must divide the embedding dimension 24"):
        VectorIndex(kind="ivfpq", pq_m=5).fit(x, make_ids(len(x)))
    with pytest.raises(ValueError, match="at least 256 vectors"):
        VectorIndex(kind="ivfpq").fit(x[:100], make_ids(100))
