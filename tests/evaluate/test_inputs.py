"""Reading feature sets and labels, and joining them by row, object_id or sky position."""

import numpy as np
import pytest
from astropy.table import Table

from astroembed.data.records import InvalidDataError
from astroembed.evaluate.inputs import join, load_features, load_labels, read_table


def _catalogue(tmp_path, n=30, seed=0):
    rng = np.random.default_rng(seed)
    t = Table({"object_id": [f"g{i:03d}" for i in range(n)], "ra": rng.uniform(10, 11, n),
               "dec": rng.uniform(-1, 1, n), "u": rng.normal(20, 1, n), "g": rng.normal(19, 1, n),
               "z": rng.uniform(0, 0.5, n)})
    t["u"][3] = np.nan  # a missing magnitude: the row is dropped and counted
    path = tmp_path / "cat.csv"
    t.write(path)
    return t, path


def test_features_and_labels_from_one_catalogue_drop_bad_rows_together(tmp_path):
    t, path = _catalogue(tmp_path)
    fs = load_features(path, ["u", "g"])
    assert fs.X.shape == (29, 2) and fs.n_dropped == 1 and "g003" not in fs.object_ids
    labels = load_labels(path, ["z"])
    index, how = join(fs, labels)
    assert how == "object_id"
    np.testing.assert_allclose(labels.columns["z"][index], np.delete(np.asarray(t["z"]), 3))


def test_join_by_object_id_in_any_order_and_by_sky_position(tmp_path):
    t, path = _catalogue(tmp_path)
    fs = load_features(path, ["u", "g"])
    other = t[::-1][["object_id", "z"]]
    other.write(tmp_path / "labels.fits")
    index, how = join(fs, load_labels(tmp_path / "labels.fits", ["z"]))
    assert how == "object_id" and np.all(np.asarray(other["object_id"])[index] == fs.object_ids)
    # no ids: nearest position within 1 arcsec; one label moved 5 arcsec away has no partner
    by_position = t[::-1][["ra", "dec", "z"]]
    by_position["dec"][0] += 5 / 3600
    by_position.write(tmp_path / "positions.fits")
    labels = load_labels(tmp_path / "positions.fits", ["z"])
    index, how = join(fs, labels, radius_arcsec=1.0)
    assert how.startswith("sky position")
    moved = fs.object_ids == t["object_id"][-1]
    assert index[moved] == -1 and np.all(index[~moved] >= 0)
    np.testing.assert_allclose(labels.columns["z"][index[~moved]],
                               np.asarray(t["z"])[np.isin(t["object_id"], fs.object_ids[~moved])])


def test_missing_columns_and_unreadable_headers_are_named(tmp_path):
    _, path = _catalogue(tmp_path)
    with pytest.raises(InvalidDataError, match="field 'r'"):
        load_features(path, ["u", "r"])
    with pytest.raises(InvalidDataError, match="field 'redshift'"):
        load_labels(path, ["redshift"])
    text = tmp_path / "photoz.train"
    text.write_text("#zs u g\n0.1 19.0 18.0 0.01\n0.2 20.0 19.0 0.02\n")  # header one name short (as MLZ's)
    with pytest.raises(InvalidDataError, match="photoz.train.*--column-names"):
        read_table(text)
    table = read_table(text, names=["zs", "u", "g", "eu"])
    assert list(table["eu"]) == [0.01, 0.02]
    fs = load_features(text, ["u", "g"], names=["zs", "u", "g", "eu"])
    assert fs.ids_are_rows and list(fs.object_ids) == ["row0", "row1"]
    index, how = join(fs, load_labels(text, ["zs"], names=["zs", "u", "g", "eu"]))
    assert how == "rows" and list(index) == [0, 1]
    with pytest.raises(InvalidDataError, match="neither an embedding catalogue"):
        load_features(tmp_path)
