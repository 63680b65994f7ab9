"""`astroembed export`: each format reads back with astropy (and CSV with pandas) to the catalogue's exact
values, the embedding as one vector column (CSV: one column per component), the model in the header."""

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.embed import read_embeddings, read_metadata
from astroembed.embed.export import export_catalogue
from astroembed.models.io import content_hash


@pytest.fixture(scope="module")
def expected(builtin_catalogue):
    out, model = builtin_catalogue
    ids, ra, dec, vectors = read_embeddings(out)
    assert read_metadata(out)["model_hash"] == content_hash(model)
    return out, content_hash(model), ids, ra, dec, vectors


def _name(catalogue):
    return read_metadata(catalogue)["model_name"]  # the exported model's name, as `embed` recorded it


def _export(catalogue, path, fmt, *extra):
    result = CliRunner().invoke(app, ["export", "--embeddings", str(catalogue), "--format", fmt,
                                      "--out", str(path), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def _check(ids, ra, dec, vectors, expected):
    _, _, want_ids, want_ra, want_dec, want_vectors = expected
    assert [str(i) for i in ids] == want_ids.tolist()  # every object once, in object_id order
    np.testing.assert_array_equal(np.asarray(ra, np.float64), want_ra)
    np.testing.assert_array_equal(np.asarray(dec, np.float64), want_dec)
    assert np.asarray(vectors).shape == want_vectors.shape
    np.testing.assert_array_equal(np.asarray(vectors, np.float32), want_vectors)  # float32 written exactly


def test_fits(expected, tmp_path):
    from astropy.io import fits
    from astropy.table import Table

    catalogue, model_hash, *_ = expected
    path = tmp_path / "emb.fits"
    assert "wrote 40 embeddings" in _export(catalogue, path, "fits")
    table = Table.read(path, hdu="EMBEDDINGS")
    assert table["embedding_image"].dtype.kind == "f" and table["embedding_image"].dtype.itemsize == 4  # FITS: >f4
    assert str(table["ra"].unit) == "deg"
    _check(table["object_id"], table["ra"], table["dec"], table["embedding_image"], expected)
    header = fits.getheader(path, "EMBEDDINGS")
    assert header["MODELHSH"] == model_hash and header["MODEL"] == _name(catalogue)
    assert header["EMBEDDIM"] == expected[-1].shape[1] and header["MODALITY"] == "image"


def test_votable(expected, tmp_path):
    from astropy.io.votable import parse
    from astropy.table import Table

    catalogue, model_hash, *_ = expected
    path = tmp_path / "emb.xml"
    _export(catalogue, path, "votable")
    table = Table.read(path, format="votable")
    _check(table["object_id"], table["ra"], table["dec"], table["embedding_image"], expected)
    element = parse(str(path)).get_first_table()
    params = {p.name: p.value for p in element.params}
    assert params["model_hash"] == model_hash and params["model_name"] == _name(catalogue) and params["embed_dim"] == 32
    assert element.get_field_by_id("ra").ucd == "pos.eq.ra;meta.main"  # TOPCAT finds the sky position


def test_csv_with_pandas_and_astropy(expected, tmp_path):
    import pandas as pd
    from astropy.table import Table

    catalogue, model_hash, _, _, _, vectors = expected
    path = tmp_path / "emb.csv"
    _export(catalogue, path, "csv")
    frame = pd.read_csv(path, comment="#", dtype={"object_id": str})
    columns = [f"embedding_image_{k}" for k in range(vectors.shape[1])]
    _check(frame["object_id"], frame["ra"], frame["dec"], frame[columns].to_numpy(), expected)
    header = dict(line[2:].strip().split(": ", 1) for line in path.read_text().splitlines() if line.startswith("#"))
    assert header["model_hash"] == model_hash and header["model_name"] == _name(catalogue)
    table = Table.read(path, format="ascii.csv", comment="#")
    _check(table["object_id"], table["ra"], table["dec"], np.stack([table[c] for c in columns], 1), expected)


def test_hdf5_with_astropy_and_h5py(expected, tmp_path):
    from astropy.table import Table

    catalogue, model_hash, *_ = expected
    path = tmp_path / "emb.h5"
    _export(catalogue, path, "hdf5")
    table = Table.read(path, path="embeddings", character_as_bytes=False)
    _check(table["object_id"], table["ra"], table["dec"], table["embedding_image"], expected)
    assert table.meta["model_hash"] == model_hash and str(table["ra"].unit) == "deg"
    with h5py.File(path, "r") as f:
        attrs = dict(f["embeddings"].attrs)
    assert attrs["model_hash"] == model_hash and attrs["model_name"] == _name(catalogue)


def test_a_cone_export_holds_the_objects_in_the_cone(expected, tmp_path):
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    catalogue, _, ids, ra, dec, vectors = expected
    path = tmp_path / "cone.fits"
    _export(catalogue, path, "fits", "--cone", str(ra[3]), str(dec[3]), "5")
    distance = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(ra[3] * u.deg, dec[3] * u.deg)).deg
    got = Table.read(path)
    got_ids = np.asarray(got["object_id"], dtype=str)
    assert got_ids.tolist() == ids[distance <= 5].tolist() and 1 < len(got_ids) < len(ids)
    np.testing.assert_array_equal(got["embedding_image"], vectors[distance <= 5])


def test_bad_requests_are_clear_errors(expected, tmp_path):
    catalogue = expected[0]
    with pytest.raises(ValueError, match="cannot tell the format"):
        export_catalogue(catalogue, tmp_path / "emb.txt")
    export_catalogue(catalogue, tmp_path / "emb.fits")
    result = CliRunner().invoke(app, ["export", "--embeddings", str(catalogue), "--out", str(tmp_path / "emb.fits")])
    assert result.exit_code == 2 and "exists" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["export", "--embeddings", str(tmp_path), "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "no embedding parts" in " ".join(result.output.split())
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind
