"""Search in every direction between image, spectrum and photometry: catalogues of a three-modality
aligned model (photometry embedded from the survey, galaxies without photometry skipped and counted),
one index, and `astroembed search` returning the brute-force cosine neighbours for each of the nine
(query, target) pairs; a photometry-only model embeds and indexes on its own."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.data.mmu import write_survey
from astroembed.embed.catalog import EmbedConfig, embed_catalog
from astroembed.embed.store import read_embeddings, read_metadata
from astroembed.models.clip_model import AlignedModel
from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.models.photometry_encoder import PhotometryEncoder, PhotometryEncoderConfig
from astroembed.models.spectrum_transformer import SpectrumTransformer, SpectrumTransformerConfig
from astroembed.preprocess.image import PreprocessConfig
from astroembed.preprocess.photometry import fit_photometry_preprocess
from astroembed.preprocess.spectrum import SpectrumPreprocessConfig
from astroembed.search.catalog_search import CatalogSearch
from astroembed.train.clip import export_aligned
from astroembed.train.photometry import export_photometry_encoder

MODALITIES = ("image", "spectrum", "photometry")


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from tests.train.conftest import make_paired_galaxies
    from tests.train.test_clip_three_modalities import BANDS, add_photometry

    galaxies = add_photometry(make_paired_galaxies(n=24))
    for g in galaxies:  # this survey: every spectrum, and photometry for all but the NO_PHOTOMETRY ones
        if g.spectrum is None:
            g.spectrum = make_paired_galaxies(n=24)[int(g.object_id.split("-")[1])].spectrum
    tmp = tmp_path_factory.mktemp("search3")
    write_survey(galaxies, tmp / "survey", "triple")
    with_phot = [g for g in galaxies if g.photometry is not None]
    pre = fit_photometry_preprocess(np.stack([g.photometry.flux for g in with_phot]),
                                    np.stack([g.photometry.ivar for g in with_phot]), BANDS)
    return tmp, tmp / "survey" / "triple" / "default", galaxies, pre


@pytest.fixture(scope="module")
def catalogues(survey):
    tmp, data, galaxies, phot_pre = survey
    torch.manual_seed(0)
    image_cfg = ImageEncoderConfig(arch="small_cnn", widths=(8, 16))
    spec_pre = SpectrumPreprocessConfig(wave_min=3800, wave_max=9000, wave_step=20.0)
    spec_cfg = SpectrumTransformerConfig.for_preprocess(spec_pre, dim=16, depth=1, num_heads=2)
    phot_cfg = PhotometryEncoderConfig(n_bands=5, dim=16, depth=1, num_heads=2)
    model = AlignedModel(build_image_encoder(image_cfg), SpectrumTransformer(spec_cfg), embed_dim=8,
                         projection_hidden=0,
                         image_config={"model_type": "image_encoder", "model": image_cfg.to_dict()},
                         spectrum_config={"model_type": "spectrum_transformer", "model": spec_cfg.to_dict()},
                         photometry_encoder=PhotometryEncoder(phot_cfg),
                         photometry_config={"model_type": "photometry_encoder", "model": phot_cfg.to_dict()}).eval()
    model_dir = export_aligned(model, {
        "image": {"preprocessing": PreprocessConfig(crop_size=24).to_dict(), "bands": ["g", "r", "z"]},
        "spectrum": {"preprocessing": spec_pre.to_dict()}, "photometry": {"preprocessing": phot_pre.to_dict()}},
        tmp / "model")
    out = {m: embed_catalog(EmbedConfig(model=model_dir, data=data, out=tmp / f"emb_{m}", modality=m, device="cpu"),
                            progress=False) for m in MODALITIES}
    return model_dir, out


def test_photometry_catalogue_skips_galaxies_without_photometry(survey, catalogues):
    from tests.train.test_clip_three_modalities import NO_PHOTOMETRY

    _, _, galaxies, _ = survey
    model_dir, out = catalogues
    ids, _, _, vectors = read_embeddings(out["photometry"])
    lacking = {f"blob-{i:04d}" for i in NO_PHOTOMETRY if i < len(galaxies)}
    assert set(ids) == {g.object_id for g in galaxies} - lacking
    assert read_metadata(out["photometry"])["n_skipped"] == len(lacking)
    # the catalogue holds what load().embed_photometry gives for the same galaxies
    import astroembed

    by_id = {g.object_id: g for g in galaxies}
    direct = astroembed.load(model_dir).embed_photometry(np.stack([by_id[i].photometry.flux for i in ids]),
                                                        np.stack([by_id[i].photometry.ivar for i in ids]))
    np.testing.assert_allclose(vectors, direct, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("query", MODALITIES)
def test_search_works_in_every_direction(catalogues, tmp_path, query):
    _, out = catalogues
    runner = CliRunner()
    result = runner.invoke(app, ["index", *[a for m in MODALITIES for a in ("--embeddings", str(out[m]))],
                                 "--out", str(tmp_path / "ix")])
    assert result.exit_code == 0, result.output
    assert CatalogSearch(tmp_path / "ix").modalities == sorted(MODALITIES)
    q_ids, _, _, q_vectors = read_embeddings(out[query])
    object_id = str(q_ids[3])
    for target in MODALITIES:
        result = runner.invoke(app, ["search", "--index", str(tmp_path / "ix"), "--id", object_id, "--k", "4",
                                     "--query-modality", query, "--target-modality", target, "--json"])
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output)
        t_ids, _, _, t_vectors = read_embeddings(out[target])
        sims = (t_vectors / np.linalg.norm(t_vectors, axis=1, keepdims=True)) @ q_vectors[3]
        by_id = dict(zip(t_ids, sims))
        order = [i for i in np.argsort(-sims) if not (query == target and t_ids[i] == object_id)]
        # The brute-force top 4 (compared by similarity: an untrained model has near-ties that float
        # rounding may order either way), each reported with its own cosine.
        np.testing.assert_allclose([r["similarity"] for r in rows], sims[order[:4]], atol=1e-5)
        np.testing.assert_allclose([r["similarity"] for r in rows], [by_id[r["object_id"]] for r in rows], atol=1e-5)
        assert object_id not in [r["object_id"] for r in rows] or query != target


def test_a_photometry_only_model_embeds_a_survey(survey, tmp_path):
    _, data, galaxies, pre = survey
    encoder = PhotometryEncoder(PhotometryEncoderConfig(n_bands=5, dim=16, depth=1, num_heads=2))
    model_dir = export_photometry_encoder(encoder, pre, tmp_path / "model")
    out = embed_catalog(EmbedConfig(model=model_dir, data=data, out=tmp_path / "emb", device="cpu"), progress=False)
    meta = read_metadata(out)
    assert meta["modality"] == "photometry" and meta["embed_dim"] == 16
    assert len(read_embeddings(out)[0]) == sum(g.photometry is not None for g in galaxies)
