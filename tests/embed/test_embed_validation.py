"""Model inputs are checked by name: a survey whose bands are not the model's is refused (naming file,
object and field) unless declared with bands_as / --bands-as; planes in another order are picked by name
and embed exactly like the model's order; a search query file is held to the same rule; embedding
parts that would mislead an index (an id in two parts, a non-finite vector) are refused."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.data.mmu import write_survey
from astroembed.data.records import InvalidDataError
from astroembed.embed import EmbedConfig, embed_catalog, read_embeddings
from astroembed.inference import load
from astroembed.search.catalog_search import CatalogSearch, build_index
from tests.embed.test_embed_catalog import independent_image_forward


def rebanded(galaxies, bands, order=(0, 1, 2)):
    """The galaxies with their image planes taken in ``order`` and named ``bands``."""
    out = []
    for g in galaxies:
        if g.image is not None:
            image = dataclasses.replace(g.image, flux=g.image.flux[list(order)], bands=tuple(bands),
                                        ivar=None if g.image.ivar is None else g.image.ivar[list(order)],
                                        mask=g.image.mask[list(order)], psf_fwhm=g.image.psf_fwhm[list(order)])
            g = dataclasses.replace(g, image=image)
        out.append(g)
    return out


def with_image(galaxies):
    return sorted((g for g in galaxies if g.image is not None), key=lambda g: g.object_id)


def test_other_bands_are_refused_by_name_and_accepted_when_declared(embed_inputs, tmp_path):
    _, galaxies, model, _ = embed_inputs
    write_survey(rebanded(galaxies, ("u", "g", "r")), tmp_path / "s", "ugr")
    data = tmp_path / "s" / "ugr" / "default"
    with pytest.raises(InvalidDataError) as err:
        embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(tmp_path / "a"), device="cpu"),
                      progress=False)
    assert err.value.field == "image_band" and str(data) in str(err.value.source)
    assert err.value.object_id in {g.object_id for g in galaxies}
    assert "['u', 'g', 'r']" in str(err.value) and "--bands-as g,r,z" in str(err.value)

    out = embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(tmp_path / "b"), device="cpu",
                                    bands_as=("g", "r", "z"), precision="32-true"), progress=False)
    ids, _, _, vectors = read_embeddings(out)
    # independent reference: the saved weights and the documented crop + arcsinh in numpy, planes as stored
    expected = independent_image_forward(Path(model), np.stack([g.image.flux for g in with_image(galaxies)]))
    assert ids.tolist() == [g.object_id for g in with_image(galaxies)]
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)

    runner = CliRunner()
    result = runner.invoke(app, ["embed", "--model", str(model), "--data", str(data), "--out",
                                 str(tmp_path / "c"), "--device", "cpu"])
    assert result.exit_code != 0 and "image_band" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["embed", "--model", str(model), "--data", str(data), "--out",
                                 str(tmp_path / "d"), "--device", "cpu", "--bands-as", "g,r,z"])
    assert result.exit_code == 0, result.output


def test_planes_in_another_order_are_picked_by_name(embed_inputs, reference_run, tmp_path):
    _, galaxies, model, _ = embed_inputs
    write_survey(rebanded(galaxies, ("z", "g", "r"), order=(2, 0, 1)), tmp_path / "s", "zgr")
    out = embed_catalog(EmbedConfig(model=str(model), data=str(tmp_path / "s" / "zgr" / "default"),
                                    out=str(tmp_path / "e"), device="cpu", precision="32-true", batch_size=16),
                        progress=False)  # fp32, as the reference run
    ids, _, _, vectors = read_embeddings(out)
    ref_ids, _, _, ref_vectors = read_embeddings(reference_run)
    assert ids.tolist() == ref_ids.tolist()
    np.testing.assert_allclose(vectors, ref_vectors, rtol=1e-5, atol=1e-6)
    # the Python API takes the same declaration
    g = with_image(galaxies)[0]
    embedder = load(model)
    zgr = g.image.flux[[2, 0, 1]]
    np.testing.assert_allclose(embedder.embed(zgr, bands=("z", "g", "r")), embedder.embed(g.image.flux),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(InvalidDataError, match="object q1, field 'image_band'.*missing"):
        embedder.embed(zgr, bands=("u", "g", "r"), object_ids=["q1"], source="mine.npy")


def write_cutout(path, flux, bands: str):
    header = fits.Header()
    header.update({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 152.0, "CRVAL2": 3.0,
                   "CRPIX1": 16.5, "CRPIX2": 16.5, "CD1_1": -0.262 / 3600, "CD2_2": 0.262 / 3600,
                   "CD1_2": 0.0, "CD2_1": 0.0, "BANDS": bands, "OBJID": "query"})
    fits.PrimaryHDU(flux.astype(np.float32), header=header).writeto(path)
    return path


def test_a_query_file_is_held_to_the_models_bands(embed_inputs, reference_run, tmp_path):
    _, galaxies, model, _ = embed_inputs
    search = CatalogSearch(build_index([reference_run], tmp_path / "index"))
    g = with_image(galaxies)[3]
    grz = write_cutout(tmp_path / "grz.fits", g.image.flux, "grz")
    assert search.search(k=1, file=grz)[0].object_id == g.object_id  # the object finds itself
    ugr = write_cutout(tmp_path / "ugr.fits", g.image.flux, "ugr")
    with pytest.raises(InvalidDataError) as err:
        search.search(k=1, file=ugr)
    assert (err.value.source, err.value.object_id, err.value.field) == (str(ugr), "query", "image_band")
    assert search.search(k=1, file=ugr, bands_as=("g", "r", "z"))[0].object_id == g.object_id


def rewrite_part(part, change):
    table = pq.read_table(part)
    pq.write_table(change(table).replace_schema_metadata(table.schema.metadata), part)


def test_embedding_parts_that_would_mislead_an_index_are_refused(reference_run, tmp_path):
    out = tmp_path / "emb"
    shutil.copytree(reference_run, out)
    parts = sorted(out.glob("healpix_*/part-0.parquet"))
    first_id = pq.read_table(parts[0]).column("object_id")[0].as_py()

    def duplicate(table):
        ids = table.column("object_id").to_pylist()
        return table.set_column(0, "object_id", pa.array([first_id] + ids[1:], pa.string()))

    rewrite_part(parts[1], duplicate)
    with pytest.raises(InvalidDataError) as err:
        build_index([out], tmp_path / "index")
    assert err.value.object_id == first_id and err.value.field == "object_id"
    assert str(parts[0]) in str(err.value) and str(parts[1]) in str(err.value)  # both files are named

    shutil.rmtree(out)
    shutil.copytree(reference_run, out)

    def nan_vector(table):
        column = table.column("embedding_image").combine_chunks()
        values = column.flatten().to_numpy().copy()
        values[column.type.list_size + 2] = np.nan  # in the second row
        return table.set_column(4, table.schema.field(4), pa.FixedSizeListArray.from_arrays(
            pa.array(values, pa.float32()), column.type.list_size))

    rewrite_part(parts[0], nan_vector)
    second_id = pq.read_table(parts[0]).column("object_id")[1].as_py()
    with pytest.raises(InvalidDataError) as err:
        read_embeddings(out)
    assert (err.value.source, err.value.object_id, err.value.field) == (str(parts[0]), second_id, "embedding_image")
