"""Alignment of three modalities: image, spectrum and a photometry encoder trained from scratch (or an
exported one) in one space; each pair's loss counts only the galaxies that have both, so a galaxy
without a spectrum still trains image <-> photometry; the export embeds all three; two-modality
exports of earlier versions still load."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import astroembed
from astroembed.config import load_yaml_config
from astroembed.data.mmu import write_survey
from astroembed.data.records import Photometry
from astroembed.models.io import load_model
from astroembed.objectives.clip import CLIPLoss
from astroembed.train.clip import CLIPConfig, pretrain_clip
from astroembed.train.clip_data import fit_training_photometry
from astroembed.train.image import ImagePretrainConfig, pretrain_image
from astroembed.train.photometry import PhotometryPretrainConfig, pretrain_photometry
from astroembed.train.spectrum import SpectrumPretrainConfig, pretrain_spectrum

RUN = {"batch_size": 16, "num_workers": 0, "progress": False, "warmup_steps": 2, "checkpoint_every_n_steps": 50,
       "log_every_n_steps": 1}
BANDS = ("u", "g", "r", "i", "z")
NO_SPECTRUM, NO_PHOTOMETRY = range(0, 48, 4), range(1, 48, 6)


def add_photometry(galaxies, seed=0):
    """ugriz fluxes (nanomaggies) whose colours follow each galaxy's redshift; some galaxies lose their
    spectrum, others their photometry."""
    rng = np.random.default_rng(seed)
    for i, g in enumerate(galaxies):
        z = g.labels["redshift"]
        flux = 20 * np.exp(-np.array([3.0, 1.5, 0.6, 0.2, 0.0]) * (1 - 2 * z)) * rng.lognormal(0, 0.05)
        sigma = 0.02 * flux + 0.05
        g.photometry = Photometry(BANDS, (flux + rng.normal(0, sigma)).astype(np.float32),
                                  ivar=(1 / sigma ** 2).astype(np.float32))
        if i in NO_SPECTRUM:
            g.spectrum = None
        elif i in NO_PHOTOMETRY:
            g.photometry = None
    return galaxies


@pytest.fixture(scope="module")
def triple(tmp_path_factory):
    from tests.train.conftest import make_paired_galaxies

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("clip3")
    galaxies = add_photometry(make_paired_galaxies(n=48))
    write_survey(galaxies, tmp / "survey", "triple")
    data = tmp / "survey" / "triple" / "default"
    run = {**RUN, "batch_size": 8, "max_steps": 1}
    from astroembed.data.mmu import MMUSurvey

    ids = MMUSurvey(data).object_ids.astype(str)  # the survey holds the galaxies in tile order
    with_spectra = [i for i, oid in enumerate(ids) if int(oid.split("-")[1]) not in NO_SPECTRUM]
    spectrum = pretrain_spectrum(load_yaml_config(SpectrumPretrainConfig, None, {
        "data": str(data), "out": str(tmp / "spectrum"), "train_indices": with_spectra,
        "preprocess": {"wave_step": 10.0},
        "model": {"dim": 32, "depth": 1, "num_heads": 4}, "run": run}))
    image = pretrain_image(load_yaml_config(ImagePretrainConfig, None, {
        "data": str(data), "out": str(tmp / "image"), "encoder": {"arch": "small_cnn", "widths": [8, 16, 16, 32]},
        "augment": {"crop_size": 24, "max_shift": 2.0}, "projection_dim": 16, "projection_hidden": 32, "run": run}))
    return data, galaxies, image, spectrum


def clip_config(out, run=None, **fields) -> CLIPConfig:
    return load_yaml_config(CLIPConfig, None, {
        "embed_dim": 16, "projection_hidden": 32, "backbone_lr_scale": 1.0,
        "photometry_encoder": {"dim": 16, "depth": 1, "num_heads": 2}, "out": str(out),
        "run": {**RUN, **(run or {})}, **fields})


def test_three_modalities_train_and_the_export_embeds_all_three(triple, tmp_path):
    data, galaxies, image, spectrum = triple
    model_dir = pretrain_clip(clip_config(tmp_path / "clip", {"max_steps": 40, "learning_rate": 3e-3},
                                          image_model=str(image), spectrum_model=str(spectrum), photometry=True,
                                          data=str(data)))
    config = json.loads((model_dir / "config.json").read_text())
    assert config["modalities"] == ["image", "spectrum", "photometry"] and config["photometry_bands"] == list(BANDS)
    assert set(config["training"]["logit_scales"]) == {"image_spectrum", "image_photometry", "spectrum_photometry"}
    model = astroembed.load(model_dir, precision="32-true")
    assert model.modalities == ("image", "spectrum", "photometry")
    with_all = [g for i, g in enumerate(galaxies) if i not in NO_SPECTRUM and i not in NO_PHOTOMETRY]
    a = model.embed(np.stack([g.image.flux for g in with_all]))
    b = model.embed_spectrum([g.spectrum for g in with_all])
    c = model.embed_photometry(np.stack([g.photometry.flux for g in with_all]),
                               np.stack([g.photometry.ivar for g in with_all]), bands=BANDS)
    for v in (a, b, c):
        assert v.shape == (len(with_all), 16)
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    # Photometry and image share redshift: after a short alignment, true partners rank far above chance.
    sim = model.similarity(c, a)
    rank = np.median([(sim[i] > sim[i, i]).sum() for i in range(len(sim))])
    assert rank < (len(sim) - 1) / 2 * 0.6, f"median rank {rank} of the true image for a photometry query"


def test_each_pair_counts_only_the_galaxies_that_have_both(triple, tmp_path):
    from astroembed.data.dataset import MMUDataset
    from astroembed.train import clip as clip_stage

    data, galaxies, image, spectrum = triple
    config = clip_config(tmp_path / "clip", image_model=str(image), spectrum_model=str(spectrum), photometry=True,
                         data=str(data))
    pre = fit_training_photometry(MMUDataset(data, ("photometry",)), BANDS)
    model, configs = clip_stage.build_aligned(config, lambda: pre)
    dataset = MMUDataset(data, modalities=("image", "spectrum", "photometry"))
    from astroembed.preprocess.photometry import PhotometryPreprocessConfig
    from astroembed.preprocess.spectrum import SpectrumPreprocessConfig
    from astroembed.train.clip_data import AlignmentInputs

    inputs = AlignmentInputs(image=clip_stage._image_preprocess(config, configs["image"], dataset),
                             bands=("g", "r", "z"),
                             spectrum=SpectrumPreprocessConfig.from_dict(configs["spectrum"]["preprocessing"]),
                             photometry=PhotometryPreprocessConfig.from_dict(configs["photometry"]["preprocessing"]),
                             survey_photometry_bands=BANDS)
    networks = clip_stage.CLIPNetworks(config, model, inputs, ("image", "spectrum")).eval()
    batch = torch.utils.data.default_collate([dataset[i] for i in range(24)])
    present = {m: inputs.present(m, batch).numpy() for m in ("image", "spectrum", "photometry")}
    rows = [int(oid.split("-")[1]) for oid in batch["object_id"]]
    assert present["image"].all()
    assert present["spectrum"].tolist() == [i not in NO_SPECTRUM for i in rows]
    assert present["photometry"].tolist() == [i not in NO_PHOTOMETRY for i in rows]
    assert not present["spectrum"].all() and not present["photometry"].all()
    with torch.no_grad():
        outs = networks(batch)
        z = {m: networks._project(m, batch) for m in ("image", "spectrum", "photometry")}
    for name, out in outs.items():
        a, b = name.split("_")
        both = torch.from_numpy(present[a] & present[b])
        want = CLIPLoss(init_temperature=config.init_temperature)(z[a][both], z[b][both])
        torch.testing.assert_close(out.loss, want)


def test_any_two_modalities_with_an_exported_photometry_encoder(triple, tmp_path):
    data, galaxies, image, _ = triple
    phot = pretrain_photometry(load_yaml_config(PhotometryPretrainConfig, None, {
        "data": str(data), "out": str(tmp_path / "phot"), "model": {"dim": 16, "depth": 1, "num_heads": 2},
        "run": {**RUN, "max_steps": 3}}))
    g = galaxies[2]
    assert astroembed.load(phot).embed_photometry(g.photometry.flux, g.photometry.ivar).shape == (1, 16)
    model_dir = pretrain_clip(clip_config(tmp_path / "clip", {"max_steps": 2}, image_model=str(image),
                                          photometry_model=str(phot), freeze_photometry=True, data=str(data)))
    aligned, config = load_model(model_dir)
    assert config["modalities"] == ["image", "photometry"] and aligned.spectrum_encoder is None
    frozen, _ = load_model(phot)
    for k, v in frozen.state_dict().items():
        assert torch.equal(aligned.photometry_encoder.state_dict()[k], v), k
    embedder = astroembed.load(model_dir)
    with pytest.raises(astroembed.InvalidDataError if hasattr(astroembed, "InvalidDataError") else ValueError,
                       match="no spectrum encoder"):
        embedder.embed_spectrum(np.ones((1, 100)), None, np.linspace(3800, 9000, 100))
    with pytest.raises(ValueError, match="two or three modalities"):
        pretrain_clip(clip_config(tmp_path / "one", image_model=str(image), data=str(data)))


def test_a_two_modality_export_of_the_earlier_layout_still_loads(triple, tmp_path):
    # The layout `pretrain clip` wrote before photometry existed: these keys, these weight names.
    _, galaxies, image, spectrum = triple
    image_enc, image_cfg = load_model(image)
    spectrum_enc, spectrum_cfg = load_model(spectrum)
    from astroembed.models.clip_model import projection_head

    heads = {"image_head": projection_head(image_enc.embed_dim, 32, 16),
             "spectrum_head": projection_head(spectrum_enc.embed_dim, 32, 16)}
    state = {**{f"image_encoder.{k}": v for k, v in image_enc.state_dict().items()},
             **{f"spectrum_encoder.{k}": v for k, v in spectrum_enc.state_dict().items()},
             **{f"{h}.{k}": v for h, m in heads.items() for k, v in m.state_dict().items()}}
    old = tmp_path / "old"
    old.mkdir()
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(old / "model.safetensors"),
              metadata={"format": "pt"})
    (old / "config.json").write_text(json.dumps({
        "model_type": "aligned", "modality": "aligned", "modalities": ["image", "spectrum"],
        "model": {"image": {"model_type": "image_encoder", "model": image_cfg["model"]},
                  "spectrum": {"model_type": "spectrum_transformer", "model": spectrum_cfg["model"]},
                  "embed_dim": 16, "projection_hidden": 32},
        "preprocessing": {"image": image_cfg["preprocessing"], "spectrum": spectrum_cfg["preprocessing"]},
        "bands": ["g", "r", "z"], "embed_dim": 16, "training": {"method": "clip"}, "astroembed_version": "0.1.0"}))
    model = astroembed.load(old)
    assert model.modalities == ("image", "spectrum")
    assert model.embed(galaxies[1].image.flux).shape == (1, 16)
    assert model.embed_spectrum([galaxies[1].spectrum]).shape == (1, 16)


def test_the_command_needs_two_modalities_and_says_so_in_one_line(triple, tmp_path):
    from typer.testing import CliRunner

    from astroembed.cli import app

    data, _, image, _ = triple
    result = CliRunner().invoke(app, ["pretrain", "clip", "--image-model", str(image), "--data", str(data),
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "two or three modalities" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["pretrain", "clip", "--image-model", str(image), "--photometry",
                                      "--photometry-model", str(image), "--data", str(data), "--out", str(tmp_path)])
    assert result.exit_code != 0 and "not both" in result.output
