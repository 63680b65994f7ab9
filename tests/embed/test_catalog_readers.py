"""The catalogue written by `astroembed embed` opens in one line in the readers astronomers use, whole and
with its types; selections by tile or sky region open only the parts they need."""

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from astroembed.data.healpix import healpix_index
from astroembed.data.records import InvalidDataError
from astroembed.embed import EmbedConfig, embed_catalog, read_embeddings, read_metadata
from astroembed.embed.tables import read_table, select_parts, tiles_in_cone


@pytest.fixture(scope="module")
def catalogue(builtin_catalogue):
    """(folder, object ids, ra, dec, vectors, embed_dim) of the built-in survey's image catalogue."""
    out, _ = builtin_catalogue
    ids, ra, dec, vectors = read_embeddings(out)
    assert len(ids) == 40 and len(list(out.glob("healpix_*/part-0.parquet"))) > 3  # several tiles
    return out, ids, ra, dec, vectors, read_metadata(out)["embed_dim"]


def _expected_schema(dim):
    return {"object_id": pa.string(), "ra": pa.float64(), "dec": pa.float64(), "healpix": pa.int64(),
            "embedding_image": pa.list_(pa.float32(), dim)}


def _check_rows(ids, vectors, want_ids, want_vectors):
    order = np.argsort(np.asarray(ids, dtype=str))
    assert np.asarray(ids, dtype=str)[order].tolist() == want_ids.tolist()
    np.testing.assert_array_equal(np.stack([np.asarray(v) for v in vectors])[order], want_vectors)


def test_pandas(catalogue):
    import pandas as pd

    out, ids, ra, _, vectors, dim = catalogue
    frame = pd.read_parquet(out)
    assert len(frame) == len(ids)
    assert frame["ra"].dtype == np.float64 and frame["dec"].dtype == np.float64
    assert frame["healpix"].dtype == np.int64  # not a category from a hive folder name
    assert pd.api.types.is_string_dtype(frame["object_id"])
    assert frame["embedding_image"].iloc[0].dtype == np.float32 and frame["embedding_image"].iloc[0].shape == (dim,)
    _check_rows(frame["object_id"], frame["embedding_image"], ids, vectors)
    np.testing.assert_array_equal(frame["healpix"], healpix_index(frame["ra"], frame["dec"]))


@pytest.mark.parametrize("how", ["read_table", "dataset_hive"])
def test_pyarrow(catalogue, how):
    out, ids, _, _, vectors, dim = catalogue
    table = pq.read_table(out) if how == "read_table" else ds.dataset(out, partitioning="hive").to_table()
    assert {f.name: f.type for f in table.schema} == _expected_schema(dim)
    assert table.num_rows == len(ids)
    _check_rows(table.column("object_id").to_pylist(), table.column("embedding_image").to_pylist(), ids, vectors)


def test_polars(catalogue):
    pl = pytest.importorskip("polars")
    out, ids, _, _, vectors, dim = catalogue
    frame = pl.read_parquet(f"{out}/**/*.parquet")
    assert frame.height == len(ids)
    assert dict(frame.schema) == {"object_id": pl.String, "ra": pl.Float64, "dec": pl.Float64,
                                  "healpix": pl.Int64, "embedding_image": pl.Array(pl.Float32, dim)}
    _check_rows(frame["object_id"].to_list(), frame["embedding_image"].to_numpy(), ids, vectors)


def test_duckdb(catalogue):
    duckdb = pytest.importorskip("duckdb")
    out, ids, _, _, vectors, dim = catalogue
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{out}/**/*.parquet', hive_partitioning=true)")
    # Parquet itself has no fixed-size list: DuckDB sees a list of FLOAT (float32), each of length dim.
    assert dict(zip(relation.columns, map(str, relation.dtypes))) == {
        "object_id": "VARCHAR", "ra": "DOUBLE", "dec": "DOUBLE", "healpix": "BIGINT", "embedding_image": "FLOAT[]"}
    rows = relation.fetchall()
    assert len(rows) == len(ids) and {len(r[4]) for r in rows} == {dim}
    _check_rows([r[0] for r in rows], [np.asarray(r[4], np.float32) for r in rows], ids, vectors)


def test_dask(catalogue):
    import dask.dataframe as dd

    out, ids, _, _, vectors, _ = catalogue
    frame = dd.read_parquet(out)
    assert frame["healpix"].dtype == np.int64 and frame["ra"].dtype == np.float64
    computed = frame.compute()
    assert len(computed) == len(ids)
    _check_rows(computed["object_id"], computed["embedding_image"], ids, vectors)


def test_astropy_reads_each_part(catalogue):
    from astropy.table import Table, vstack

    out, ids, _, _, vectors, dim = catalogue
    table = vstack([Table.read(p) for p in sorted(out.glob("healpix_*/part-0.parquet"))])
    assert len(table) == len(ids)
    assert table["embedding_image"].dtype == np.float32 and table["embedding_image"].shape == (len(ids), dim)
    assert table["healpix"].dtype == np.int64
    _check_rows(table["object_id"], table["embedding_image"], ids, vectors)


def test_a_tile_filter_reads_that_tile_only(catalogue, tmp_path):
    out, ids, ra, dec, vectors, _ = catalogue
    tiles = healpix_index(ra, dec)
    tile = int(np.bincount(tiles).argmax())
    want = np.sort(ids[tiles == tile])
    # The usual one-liner: pyarrow skips the other parts' data by their row-group statistics.
    filtered = ds.dataset(out).to_table(filter=ds.field("healpix") == tile)
    assert sorted(filtered.column("object_id").to_pylist()) == want.tolist()
    # read_table opens no other part: it works on a copy whose other parts are garbage.
    broken = tmp_path / "emb"
    shutil.copytree(out, broken)
    for part in broken.glob("healpix_*/part-0.parquet"):
        if part.parent.name != f"healpix_{tile}":
            part.write_bytes(b"not parquet")
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(broken)
    table = read_table(broken, tiles=[tile])
    assert table.column("object_id").to_pylist() == want.tolist()
    np.testing.assert_array_equal(np.stack(table.column("embedding_image").to_numpy(zero_copy_only=False)),
                                  vectors[np.isin(ids, want)])
    assert table.schema.metadata[b"model_hash"] == read_metadata(out)["model_hash"].encode()


def _haversine_deg(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h)))


def test_a_cone_returns_exactly_the_objects_within_it(catalogue):
    out, ids, ra, dec, _, _ = catalogue
    centre_ra, centre_dec = float(ra[0]), float(dec[0])
    distances = _haversine_deg(ra, dec, centre_ra, centre_dec)
    radius = float(np.sort(distances)[5]) + 1e-6  # six objects inside, the rest outside
    table = read_table(out, cone=(centre_ra, centre_dec, radius), columns=["object_id"])
    assert table.column_names == ["object_id"]
    assert table.column("object_id").to_pylist() == np.sort(ids[distances <= radius]).tolist()
    assert len(select_parts(out, cone=(centre_ra, centre_dec, radius))) < len(select_parts(out))


def test_cone_tiles_cover_every_point_of_the_cone():
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    rng = np.random.default_rng(1)
    for _ in range(40):
        centre = SkyCoord(rng.uniform(0, 360) * u.deg, rng.uniform(-89, 89) * u.deg)
        radius = rng.uniform(0.01, 6)
        points = centre.directional_offset_by(rng.uniform(0, 360, 300) * u.deg,
                                              np.sqrt(rng.uniform(0, 1, 300)) * radius * u.deg)
        tiles = tiles_in_cone(centre.ra.deg, centre.dec.deg, radius)
        assert np.isin(healpix_index(points.ra.deg, points.dec.deg), tiles).all()
    with pytest.raises(ValueError, match="radius"):
        tiles_in_cone(10.0, 0.0, -1.0)


def test_earlier_hive_folders_are_read_but_not_resumed(catalogue, builtin_catalogue, tmp_path):
    out, ids, _, _, vectors, _ = catalogue
    legacy = tmp_path / "emb"
    shutil.copytree(out, legacy)
    for folder in legacy.glob("healpix_*"):
        folder.rename(folder.with_name(folder.name.replace("_", "=")))
    got_ids, _, _, got = read_embeddings(legacy)
    assert got_ids.tolist() == ids.tolist()
    np.testing.assert_array_equal(got, vectors)
    with pytest.raises(InvalidDataError, match="hive layout"):
        embed_catalog(EmbedConfig(model=str(builtin_catalogue[1]), data=str(tmp_path), out=str(legacy),
                                  device="cpu"), progress=False)
