"""Search over embedding catalogues: by id, by position, by file, across modalities, and the CLI."""

import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.data.records import InvalidDataError
from astroembed.embed.catalog import EmbedConfig, embed_catalog
from astroembed.embed.store import read_embeddings, write_part_atomic
from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.models.io import save_model
from astroembed.preprocess.image import PreprocessConfig
from astroembed.search.catalog_search import CatalogSearch, build_index


@pytest.fixture
def image_catalogue(blob_survey, tmp_path):
    path, galaxies = blob_survey
    torch.manual_seed(0)
    cfg = ImageEncoderConfig(arch="small_cnn", widths=(8, 16))
    model_dir = save_model(build_image_encoder(cfg), {
        "model_type": "image_encoder", "model": cfg.to_dict(), "bands": ["g", "r", "z"], "embed_dim": 16,
        "preprocessing": PreprocessConfig(crop_size=24).to_dict()}, tmp_path / "model")
    out = embed_catalog(EmbedConfig(model=model_dir, data=path, out=tmp_path / "emb", device="cpu"), progress=False)
    return out, model_dir, galaxies


def brute_force(vectors, ids, query, k, exclude=None):
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = v @ (query / np.linalg.norm(query))
    order = [i for i in np.argsort(-sims) if ids[i] != exclude]
    return [ids[i] for i in order[:k]], sims[order[:k]]


def test_search_by_id_equals_brute_force_and_skips_the_query(image_catalogue, tmp_path):
    emb, _, galaxies = image_catalogue
    search = CatalogSearch(build_index([emb], tmp_path / "index"))
    ids, _, _, vectors = read_embeddings(emb)
    query = galaxies[5].object_id
    got = search.search(k=5, object_id=query)
    expected_ids, expected_sims = brute_force(vectors, ids, vectors[list(ids).index(query)], 5, exclude=query)
    assert [n.object_id for n in got] == expected_ids
    np.testing.assert_allclose([n.similarity for n in got], expected_sims, rtol=1e-5)
    assert all(np.isfinite(n.separation_arcsec) for n in got)


def test_search_by_position_finds_the_object_there(image_catalogue, tmp_path):
    emb, _, galaxies = image_catalogue
    search = CatalogSearch(build_index([emb], tmp_path / "index"))
    g = galaxies[7]
    by_position = search.search(k=4, ra=g.ra + 0.5 / 3600, dec=g.dec)
    by_id = search.search(k=4, object_id=g.object_id)
    assert [n.object_id for n in by_position] == [n.object_id for n in by_id]
    with pytest.raises(InvalidDataError, match="no image object within"):
        search.search(k=4, ra=g.ra + 1.0, dec=g.dec)


def test_search_by_file_embeds_it_with_the_catalogue_model(image_catalogue, tmp_path):
    from astropy.io import fits
    from astropy.wcs import WCS

    emb, _, galaxies = image_catalogue
    search = CatalogSearch(build_index([emb], tmp_path / "index"))
    g = galaxies[3]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [g.ra, g.dec]
    wcs.wcs.crpix = [16.5, 16.5]
    wcs.wcs.cdelt = [-0.262 / 3600, 0.262 / 3600]
    header = wcs.to_header()
    header["BANDS"] = "grz"
    fits.PrimaryHDU(g.image.flux, header=header).writeto(tmp_path / "cutout.fits")
    got = search.search(k=3, file=tmp_path / "cutout.fits")
    # The file holds the same pixels as the catalogued galaxy: it is its own best match.
    assert got[0].object_id == g.object_id and got[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert got[0].separation_arcsec < 0.1


def test_unknown_id_and_ambiguous_queries_are_clear_errors(image_catalogue, tmp_path):
    emb, _, _ = image_catalogue
    search = CatalogSearch(build_index([emb], tmp_path / "index"))
    with pytest.raises(InvalidDataError, match="object nope.*unknown object id"):
        search.search(object_id="nope")
    with pytest.raises(ValueError, match="exactly one query"):
        search.search(object_id="blob-0001", ra=1.0, dec=2.0)
    with pytest.raises(InvalidDataError, match="no 'spectrum' index"):
        search.search(object_id="blob-0001", target_modality="spectrum")


def _fake_catalogue(path, modality, ids, vectors, model_hash):
    table = pa.table({"object_id": ids, "ra": np.linspace(10, 20, len(ids)), "dec": np.zeros(len(ids)),
                      "healpix": np.zeros(len(ids), np.int64),
                      f"embedding_{modality}": pa.FixedSizeListArray.from_arrays(
                          pa.array(vectors.ravel(), pa.float32()), vectors.shape[1])})
    meta = {"model_name": "aligned", "model_hash": model_hash, "model_path": "", "modality": modality,
            "embed_dim": str(vectors.shape[1]), "astroembed_version": "test", "source_tile": "t",
            "source_rows": str(len(ids)), "n_skipped": "0"}
    write_part_atomic(table.replace_schema_metadata(meta), path / "healpix=0" / "part-0.parquet")
    return path


def test_cross_modal_search_needs_one_shared_space(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.array([f"g{i:02d}" for i in range(30)])
    image = rng.normal(size=(30, 8)).astype(np.float32)
    spectrum = (image + 0.05 * rng.normal(size=image.shape)).astype(np.float32)  # aligned partners
    a = _fake_catalogue(tmp_path / "img", "image", ids, image, "h1")
    b = _fake_catalogue(tmp_path / "spec", "spectrum", ids, spectrum, "h1")
    search = CatalogSearch(build_index([a, b], tmp_path / "index"))
    got = search.search(k=3, object_id="g07", query_modality="image", target_modality="spectrum")
    assert got[0].object_id == "g07"  # the galaxy's own spectrum is kept in a cross-modal search
    c = _fake_catalogue(tmp_path / "spec2", "spectrum", ids, spectrum, "h2")
    other = CatalogSearch(build_index([a, c], tmp_path / "index2"))
    with pytest.raises(InvalidDataError, match="one aligned"):
        other.search(k=3, object_id="g07", query_modality="image", target_modality="spectrum")


def test_cli_index_and_search(image_catalogue, tmp_path):
    emb, _, galaxies = image_catalogue
    runner = CliRunner()
    result = runner.invoke(app, ["index", "--embeddings", str(emb), "--out", str(tmp_path / "ix"),
                                 "--neighbours", "3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ix" / "neighbours_image.parquet").exists()
    result = runner.invoke(app, ["search", "--index", str(tmp_path / "ix"), "--id", galaxies[0].object_id,
                                 "--k", "4", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 4 and galaxies[0].object_id not in [r["object_id"] for r in rows]
    result = runner.invoke(app, ["search", "--index", str(tmp_path / "ix"), "--id", "nope"])
    assert result.exit_code == 2 and "unknown object id" in result.output




def test_cli_search_json_is_strict_json_with_null_for_unknown_separations(image_catalogue, tmp_path, monkeypatch):
    from astroembed.search.catalog_search import Neighbour

    emb, _, galaxies = image_catalogue
    runner = CliRunner()
    assert runner.invoke(app, ["index", "--embeddings", str(emb), "--out", str(tmp_path / "ix")]).exit_code == 0
    real_search = CatalogSearch.search

    def without_query_position(self, **kw):
        # as for a query file without a sky position: every separation is unknown (NaN)
        return [Neighbour(n.object_id, n.similarity, n.ra, n.dec, float("nan")) for n in real_search(self, **kw)]

    monkeypatch.setattr(CatalogSearch, "search", without_query_position)
    result = runner.invoke(app, ["search", "--index", str(tmp_path / "ix"), "--id", galaxies[5].object_id,
                                 "--k", "3", "--json"])
    assert result.exit_code == 0, result.output

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    rows = json.loads(result.stdout, parse_constant=refuse)  # Python's json reads NaN unless told not to
    assert len(rows) == 3 and galaxies[5].object_id not in [r["object_id"] for r in rows]
    assert all(r["separation_arcsec"] is None and isinstance(r["ra"], float) for r in rows)


def test_cli_search_prints_a_table_of_the_same_neighbours(image_catalogue, tmp_path):
    emb, _, galaxies = image_catalogue
    runner = CliRunner()
    assert runner.invoke(app, ["index", "--embeddings", str(emb), "--out", str(tmp_path / "ix")]).exit_code == 0
    query = galaxies[5].object_id
    table = runner.invoke(app, ["search", "--index", str(tmp_path / "ix"), "--id", query, "--k", "3"])
    assert table.exit_code == 0, table.output
    rows = json.loads(runner.invoke(app, ["search", "--index", str(tmp_path / "ix"), "--id", query, "--k", "3",
                                          "--json"]).stdout)
    assert "neighbours" in table.stdout
    for row in rows:
        assert row["object_id"] in table.stdout and f"{row['similarity']:.4f}" in table.stdout
