"""Alignment on frozen features: on a survey whose images and spectra share a latent (redshift), heads
trained on cached features make matched pairs retrieve each other far above chance; both encoders are
exported unchanged; the export embeds as any aligned model does, each modality through its head on the
very features the heads trained on (view 0 = the unaugmented cutout)."""

import json

import numpy as np
import pytest
import torch

import astroembed
from astroembed.config import load_yaml_config
from astroembed.data.mmu import write_survey
from astroembed.data.records import InvalidDataError
from astroembed.evaluate.retrieval import retrieval_report
from astroembed.models.io import load_model, load_state
from astroembed.train.clip_frozen import FrozenAlignConfig, align_frozen
from astroembed.train.image import ImagePretrainConfig, pretrain_image
from astroembed.train.spectrum import SpectrumPretrainConfig, pretrain_spectrum

RUN = {"batch_size": 8, "num_workers": 0, "progress": False, "warmup_steps": 1, "max_steps": 1,
       "checkpoint_every_n_steps": 50, "log_every_n_steps": 1}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """The paired survey and an image and a spectrum encoder exported by their stages (1 step each)."""
    from tests.train.conftest import make_paired_galaxies

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("frozen")
    galaxies = make_paired_galaxies(n=48)
    write_survey(galaxies, tmp / "survey", "paired")
    data = tmp / "survey" / "paired" / "default"
    spectrum = pretrain_spectrum(load_yaml_config(SpectrumPretrainConfig, None, {
        "data": str(data), "out": str(tmp / "spectrum"), "preprocess": {"wave_step": 10.0},
        "model": {"dim": 32, "depth": 1, "num_heads": 4}, "run": RUN}))
    image = pretrain_image(load_yaml_config(ImagePretrainConfig, None, {
        "data": str(data), "out": str(tmp / "image"), "encoder": {"arch": "small_cnn", "widths": [8, 16, 16, 32]},
        "augment": {"crop_size": 24, "max_shift": 2.0}, "projection_dim": 16, "projection_hidden": 32,
        "run": RUN}))
    return data, galaxies, image, spectrum


def frozen_config(encoders, out, **extra) -> FrozenAlignConfig:
    data, _, image, spectrum = encoders
    return load_yaml_config(FrozenAlignConfig, None, {
        "image_model": str(image), "spectrum_model": str(spectrum), "data": str(data), "out": str(out),
        "embed_dim": 16, "projection_hidden": 32, "image_views": 2, "epochs": 60, "batch_size": 16,
        "learning_rate": 3e-3, "device": "cpu", **extra})


def _same(state_a: dict, state_b: dict) -> bool:
    return state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_heads_on_frozen_features_align_pairs_and_keep_the_encoders(encoders, tmp_path):
    _, galaxies, image, spectrum = encoders
    # every training galaxy trains (on 48 galaxies a validation set of 5 is too small to choose an epoch)
    model_dir = align_frozen(frozen_config(encoders, tmp_path / "align", validation_fraction=0.0))
    history = json.loads((tmp_path / "align" / "history.json").read_text())
    assert len(history) == 60 and history[-1]["loss"] < 0.7 * history[0]["loss"]

    model = astroembed.load(model_dir)
    assert model.modality == "aligned" and model.modalities == ("image", "spectrum")
    a = model.embed(np.stack([g.image.flux for g in galaxies]))
    b = model.embed_spectrum([g.spectrum for g in galaxies])
    n = len(galaxies)
    forward, backward = retrieval_report(a, b), retrieval_report(b, a)  # ties count against the query
    assert 0.5 * (forward["top1"] + backward["top1"]) >= 3 / n, (forward, backward)
    assert forward["median_rank"] < n / 4 and backward["median_rank"] < n / 4, (forward, backward)

    aligned, _ = load_model(model_dir)
    _, image_state = load_state(image)
    _, spectrum_state = load_state(spectrum)
    assert _same(aligned.image_encoder.state_dict(), image_state)  # BatchNorm statistics included
    assert _same(aligned.spectrum_encoder.state_dict(), spectrum_state)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "aligned" and config["training"]["alignment"] == "frozen_features"
    training = config["training"]
    assert training["n_galaxies"] == n and training["image_views"] == 2
    assert training["n_validation"] == 0 and training["kept_epoch"] == 59 and training["val_loss"] is None


def test_the_export_embeds_through_its_heads_on_the_encoders_own_embeddings(encoders, tmp_path):
    # Independent path: the encoders' own exports embed the galaxies (their saved preprocessing), and the
    # aligned export must equal its heads applied to those features, L2-normalised.
    _, galaxies, image, spectrum = encoders
    model_dir = align_frozen(frozen_config(encoders, tmp_path / "align", epochs=3))
    # 10 % of the training galaxies (the default) kept out to choose the epoch: the lowest validation loss
    history = json.loads((tmp_path / "align" / "history.json").read_text())
    training = json.loads((model_dir / "config.json").read_text())["training"]
    assert training["n_validation"] == 5 and training["val_loss"] == min(row["val_loss"] for row in history)
    aligned, _ = load_model(model_dir)
    aligned.eval()
    images, spectra = np.stack([g.image.flux for g in galaxies[:6]]), [g.spectrum for g in galaxies[:6]]
    with torch.no_grad():
        features = torch.as_tensor(astroembed.load(image, precision="32-true").embed(images))
        expected = torch.nn.functional.normalize(aligned.image_head(features), dim=-1).numpy()
        spectrum_features = torch.as_tensor(astroembed.load(spectrum, precision="32-true").embed_spectrum(spectra))
        expected_spectra = torch.nn.functional.normalize(aligned.spectrum_head(spectrum_features), dim=-1).numpy()
    model = astroembed.load(model_dir, precision="32-true")
    np.testing.assert_allclose(model.embed(images), expected, atol=2e-5)
    np.testing.assert_allclose(model.embed_spectrum(spectra), expected_spectra, atol=2e-5)


def test_a_rerun_with_the_model_exported_does_nothing(encoders, tmp_path):
    model_dir = align_frozen(frozen_config(encoders, tmp_path / "align", epochs=2))
    stamp = (model_dir / "model.safetensors").stat().st_mtime_ns
    assert align_frozen(frozen_config(encoders, tmp_path / "align", epochs=2)) == model_dir
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_bad_settings_and_inputs_are_clear_errors(encoders, tmp_path):
    with pytest.raises(ValueError, match="image_views=3 needs image_augment"):
        FrozenAlignConfig(image_augment=None, image_views=3)
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        frozen_config(encoders, tmp_path / "a", batch_size=1)
    cfg = frozen_config(encoders, tmp_path / "a")
    cfg.image_model, cfg.spectrum_model = cfg.spectrum_model, cfg.image_model
    with pytest.raises(InvalidDataError, match="model_type"):
        align_frozen(cfg)
    cfg = frozen_config(encoders, tmp_path / "b", data=str(tmp_path / "nowhere"))
    with pytest.raises(InvalidDataError, match="no such file"):
        align_frozen(cfg)


def test_end_to_end_alignment_can_start_from_the_frozen_heads(encoders, tmp_path):
    from astroembed.train.aligned_heads import load_heads
    from astroembed.train.clip import CLIPConfig, build_aligned, pretrain_clip

    frozen = align_frozen(frozen_config(encoders, tmp_path / "align", epochs=3))
    source, _ = load_model(frozen)
    data, _, image, spectrum = encoders
    cfg = load_yaml_config(CLIPConfig, None, {"image_model": str(image), "spectrum_model": str(spectrum),
                                              "data": str(data), "out": str(tmp_path / "clip"), "embed_dim": 16,
                                              "projection_hidden": 32, "run": RUN})
    model = build_aligned(cfg)[0]
    assert not _same(model.image_head.state_dict(), source.image_head.state_dict())
    load_heads(model, frozen)
    for name in ("image_head", "spectrum_head"):  # weights and BatchNorm running statistics
        assert _same(getattr(model, name).state_dict(), getattr(source, name).state_dict()), name
    assert (pretrain_clip(cfg, init_heads=frozen) / "model.safetensors").is_file()  # one fine-tuning step

    cfg.embed_dim = 8  # heads of another shared space do not fit
    with pytest.raises(InvalidDataError, match="does not fit"):
        load_heads(build_aligned(cfg)[0], frozen)
    with pytest.raises(InvalidDataError, match="aligned export"):
        load_heads(model, image)


def test_with_validation_the_heads_of_the_best_epoch_are_kept():
    # Features that share a latent; 12 training pairs and 40 epochs memorise them, so the validation loss
    # has its minimum before the last epoch, and the heads returned are that epoch's.
    from types import SimpleNamespace

    from astroembed.models.clip_model import projection_head
    from astroembed.train.clip import pair_losses
    from astroembed.train.clip_frozen import train_heads

    gen = torch.Generator().manual_seed(0)
    latent = torch.randn(40, 4, generator=gen)
    images = (latent @ torch.randn(4, 24, generator=gen) + 0.5 * torch.randn(40, 24, generator=gen))[None]
    spectra = latent @ torch.randn(4, 32, generator=gen) + 0.5 * torch.randn(40, 32, generator=gen)
    torch.manual_seed(0)
    model = SimpleNamespace(image_head=projection_head(24, 16, 8), spectrum_head=projection_head(32, 16, 8))
    losses = pair_losses(("image", "spectrum"), 0.07, 100.0, gather_distributed=False)
    config = FrozenAlignConfig(image_views=1, epochs=40, batch_size=12, learning_rate=1e-2, warmup_epochs=1)
    everyone = {"image": torch.ones(40, dtype=torch.bool), "spectrum": torch.ones(40, dtype=torch.bool)}
    history = train_heads(model, losses, {"image": images[:, :12], "spectrum": spectra[None, :12]},
                          {m: p[:12] for m, p in everyone.items()}, config, torch.device("cpu"),
                          validation=({"image": images[:, 12:], "spectrum": spectra[None, 12:]},
                                      {m: p[12:] for m, p in everyone.items()}))
    val = [row["val_loss"] for row in history]
    best = int(np.argmin(val))
    assert best < len(val) - 1 and val[-1] > val[best]  # memorised: validation loss rose after its minimum
    with torch.no_grad():
        final = float(losses["image_spectrum"](model.image_head(images[0, 12:]), model.spectrum_head(spectra[12:])))
    assert final == pytest.approx(val[best], rel=1e-6)


@pytest.fixture(scope="module")
def triple(tmp_path_factory):
    """A survey with ugriz photometry (some galaxies without a spectrum, others without photometry), and an
    image and a spectrum encoder exported by their stages (1 step each)."""
    from tests.train.conftest import make_paired_galaxies
    from tests.train.test_clip_three_modalities import add_photometry

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("frozen3")
    galaxies = add_photometry(make_paired_galaxies(n=48))
    write_survey(galaxies, tmp / "survey", "triple")
    data = tmp / "survey" / "triple" / "default"
    from astroembed.data.mmu import MMUSurvey

    ids = MMUSurvey(data).object_ids.astype(str)  # the survey holds the galaxies in tile order
    with_spectra = [i for i, oid in enumerate(ids) if galaxies[int(oid.split("-")[1])].spectrum is not None]
    spectrum = pretrain_spectrum(load_yaml_config(SpectrumPretrainConfig, None, {
        "data": str(data), "out": str(tmp / "spectrum"), "preprocess": {"wave_step": 10.0},
        "train_indices": with_spectra, "model": {"dim": 32, "depth": 1, "num_heads": 4}, "run": RUN}))
    image = pretrain_image(load_yaml_config(ImagePretrainConfig, None, {
        "data": str(data), "out": str(tmp / "image"), "encoder": {"arch": "small_cnn", "widths": [8, 16, 16, 32]},
        "augment": {"crop_size": 24, "max_shift": 2.0}, "projection_dim": 16, "projection_hidden": 32,
        "run": RUN}))
    return data, galaxies, image, spectrum


def test_photometry_trained_from_scratch_with_the_heads_aligns_and_the_export_embeds_it(triple, tmp_path):
    from tests.train.test_clip_three_modalities import BANDS, NO_PHOTOMETRY, NO_SPECTRUM

    data, galaxies, image, spectrum = triple
    model_dir = align_frozen(frozen_config(triple, tmp_path / "align", photometry=True, validation_fraction=0.0,
                                           photometry_encoder={"dim": 16, "depth": 1, "num_heads": 2},
                                           photometry_views=2, photometry_augment={"reddening": False}))
    config = json.loads((model_dir / "config.json").read_text())
    assert config["modalities"] == ["image", "spectrum", "photometry"] and config["photometry_bands"] == list(BANDS)
    training = config["training"]
    assert set(training["logit_scales"]) == {"image_spectrum", "image_photometry", "spectrum_photometry"}
    assert training["photometry_from_scratch"] and training["photometry_views"] == 2
    assert "photometry_model" not in training and training["freeze_image"] and training["freeze_spectrum"]
    assert training["photometry_training"] == "after" and training["photometry_kept_epoch"] == 59
    # The image and spectrum heads train first, then photometry aligns to their fixed projections.
    history = json.loads((tmp_path / "align" / "history.json").read_text())
    assert [row["stage"] for row in history] == ["image_spectrum"] * 60 + ["photometry"] * 60
    photometry = [row for row in history if row["stage"] == "photometry"]
    assert photometry[-1]["loss_image_photometry"] < 0.7 * photometry[0]["loss_image_photometry"]
    assert "loss_image_spectrum" not in photometry[0]

    # The pretrained encoders are exported unchanged; the photometry encoder learned.
    aligned, _ = load_model(model_dir)
    assert _same(aligned.image_encoder.state_dict(), load_state(image)[1])
    assert _same(aligned.spectrum_encoder.state_dict(), load_state(spectrum)[1])

    model = astroembed.load(model_dir, precision="32-true")
    assert model.modalities == ("image", "spectrum", "photometry")
    with_photometry = [g for i, g in enumerate(galaxies) if i not in NO_PHOTOMETRY]
    c = model.embed_photometry(np.stack([g.photometry.flux for g in with_photometry]),
                               np.stack([g.photometry.ivar for g in with_photometry]), bands=BANDS)
    a = model.embed(np.stack([g.image.flux for g in with_photometry]))
    assert c.shape == (len(with_photometry), 16)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-5)
    n = len(c)
    forward, backward = retrieval_report(c, a), retrieval_report(a, c)
    assert forward["median_rank"] < n / 4 and backward["median_rank"] < n / 4, (forward, backward)
    assert any(i in NO_SPECTRUM for i in range(len(galaxies)) if i not in NO_PHOTOMETRY)  # trained without spectra


def test_the_cached_photometry_is_what_the_export_embeds(triple, tmp_path):
    # Independent path: the cache's unaugmented view through the trained encoder and head equals what the
    # loaded export computes from the catalogue fluxes (prepare_photometry, the inference path).
    from astroembed.data.dataset import MMUDataset
    from astroembed.train.clip_frozen import _alignment_inputs, cache_features

    data, _, _, _ = triple
    cfg = frozen_config(triple, tmp_path / "align", photometry=True, epochs=3, photometry_training="joint",
                        photometry_encoder={"dim": 16, "depth": 1, "num_heads": 2})
    model_dir = align_frozen(cfg)
    history = json.loads((tmp_path / "align" / "history.json").read_text())
    assert [row["stage"] for row in history] == ["joint"] * 3 and "val_loss_image_photometry" in history[0]
    aligned, config = load_model(model_dir)
    aligned.eval()
    dataset = MMUDataset(data, modalities=("image", "spectrum", "photometry"))
    configs = {m: {"preprocessing": config["preprocessing"][m]} for m in config["modalities"]}
    configs["image"]["bands"] = config["bands"]
    inputs = _alignment_inputs(cfg, configs, dataset, ("u", "g", "r", "i", "z"))
    cache, present = cache_features(aligned, dataset, inputs, cfg, torch.device("cpu"), ("photometry",))
    assert set(cache) == {"image", "spectrum", "photometry"} and cache["photometry"]["values"].shape[:2] == (1, 48)
    survey = dataset.survey
    rows = [i for i in range(48) if bool(present["photometry"][i])]
    assert 0 < len(rows) < 48  # galaxies without photometry are marked absent
    flux = np.stack([survey.galaxy(i).photometry.flux for i in rows])
    ivar = np.stack([survey.galaxy(i).photometry.ivar for i in rows])
    with torch.no_grad():
        cached = aligned.photometry_head(aligned.photometry_encoder(
            {k: v[0, rows] for k, v in cache["photometry"].items()}))
    expected = torch.nn.functional.normalize(cached, dim=-1).numpy()
    loaded = astroembed.load(model_dir, precision="32-true")
    np.testing.assert_allclose(loaded.embed_photometry(flux, ivar, bands=survey.galaxy(rows[0]).photometry.bands),
                               expected, atol=2e-5)


def test_an_exported_photometry_encoder_is_frozen_and_its_features_cached(triple, tmp_path):
    from astroembed.train.photometry import PhotometryPretrainConfig, pretrain_photometry

    data = triple[0]
    phot = pretrain_photometry(load_yaml_config(PhotometryPretrainConfig, None, {
        "data": str(data), "out": str(tmp_path / "phot"), "model": {"dim": 16, "depth": 1, "num_heads": 2},
        "run": {**RUN, "max_steps": 2}}))
    model_dir = align_frozen(frozen_config(triple, tmp_path / "align", photometry_model=str(phot), epochs=5))
    aligned, config = load_model(model_dir)
    assert config["modalities"] == ["image", "spectrum", "photometry"]
    assert config["training"]["photometry_model"] == str(phot) and config["training"]["freeze_photometry"]
    assert _same(aligned.photometry_encoder.state_dict(), load_state(phot)[1])


def test_bad_photometry_settings_are_clear_errors():
    with pytest.raises(ValueError, match="not both"):
        FrozenAlignConfig(photometry=True, photometry_model="x")
    with pytest.raises(ValueError, match="photometry_views=2 needs photometry_augment"):
        FrozenAlignConfig(photometry=True, photometry_views=2)
    with pytest.raises(ValueError, match="photometry_training must be 'after' or 'joint'"):
        FrozenAlignConfig(photometry=True, photometry_training="first")
    with pytest.raises(ValueError, match="photometry_epochs must be a positive int"):
        FrozenAlignConfig(photometry=True, photometry_epochs=0)


def test_fixed_heads_are_not_trained_and_the_others_align_to_them():
    # The second stage of photometry_training "after": image and spectrum heads fixed (weights and BatchNorm
    # statistics), a new head learns to meet their projections.
    from types import SimpleNamespace

    from astroembed.models.clip_model import projection_head
    from astroembed.train.clip import pair_losses
    from astroembed.train.clip_frozen import train_heads

    gen = torch.Generator().manual_seed(0)
    latent = torch.randn(64, 4, generator=gen)
    features = {"image": latent @ torch.randn(4, 24, generator=gen),
                "spectrum": latent @ torch.randn(4, 32, generator=gen),
                "photometry": latent @ torch.randn(4, 8, generator=gen) + 0.1 * torch.randn(64, 8, generator=gen)}
    torch.manual_seed(0)
    model = SimpleNamespace(image_head=projection_head(24, 16, 8), spectrum_head=projection_head(32, 16, 8),
                            photometry_head=projection_head(8, 16, 8))
    with torch.no_grad():  # the fixed heads' BatchNorm statistics as a first stage would leave them
        model.image_head(features["image"]), model.spectrum_head(features["spectrum"])
    before = {m: {k: v.clone() for k, v in getattr(model, f"{m}_head").state_dict().items()}
              for m in ("image", "spectrum")}
    losses = pair_losses(("image", "spectrum", "photometry"), 0.07, 100.0, gather_distributed=False)
    del losses["image_spectrum"]
    config = FrozenAlignConfig(image_views=1, epochs=30, batch_size=32, learning_rate=1e-2, warmup_epochs=1)
    history = train_heads(model, losses, {m: f[None] for m, f in features.items()},
                          {m: torch.ones(64, dtype=torch.bool) for m in features}, config, torch.device("cpu"),
                          fixed=("image", "spectrum"))
    for m in ("image", "spectrum"):
        assert _same(getattr(model, f"{m}_head").state_dict(), before[m]), m
    assert set(k for k in history[-1] if k.startswith("loss_")) == {"loss_image_photometry",
                                                                      "loss_spectrum_photometry"}
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    with torch.no_grad():
        model.image_head.eval(), model.photometry_head.eval()
        a, c = model.image_head(features["image"]), model.photometry_head(features["photometry"])
    assert retrieval_report(c.numpy(), a.numpy())["median_rank"] < 64 / 8


def test_with_photometry_after_the_image_and_spectrum_heads_are_those_of_the_run_without(triple, tmp_path):
    # photometry_training "after" leaves image <-> spectrum exactly as the stage without photometry: same
    # heads (weights and BatchNorm statistics), photometry only added to the space.
    settings = {"epochs": 6, "photometry_encoder": {"dim": 16, "depth": 1, "num_heads": 2}}
    without, _ = load_model(align_frozen(frozen_config(triple, tmp_path / "without", **settings)))
    with_photometry, _ = load_model(align_frozen(frozen_config(triple, tmp_path / "with", photometry=True,
                                                               **settings)))
    assert with_photometry.modalities == ("image", "spectrum", "photometry")
    for name in ("image_head", "spectrum_head"):
        assert _same(getattr(without, name).state_dict(), getattr(with_photometry, name).state_dict()), name


def test_with_measured_fluxes_the_heads_see_the_encoders_features_and_the_measured_fluxes(encoders, tmp_path):
    # The export's image and spectrum encoders are the pretrained ones wrapped with their measured fluxes
    # (models/measured_fluxes.py); it embeds as its heads applied to [the encoder's own embedding, the
    # aperture fluxes of the same preprocessed cutout] and [the spectrum's embedding, its binned fluxes].
    from astroembed.models.measured_fluxes import ImageWithApertureFluxes, SpectrumWithBinnedFluxes
    from astroembed.preprocess.image import PreprocessConfig, preprocess
    from astroembed.preprocess.spectrum import SpectrumPreprocessConfig, prepare_spectra

    _, galaxies, image, spectrum = encoders
    model_dir = align_frozen(frozen_config(encoders, tmp_path / "align", epochs=4, measured_fluxes=True,
                                           aperture_radii=[3, 6, 12], spectrum_flux_bins=8,
                                           learned_feature_dropout=0.8))
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model"]["image"]["model_type"] == "image_with_aperture_fluxes"
    assert config["model"]["spectrum"]["model"]["n_bins"] == 8
    aligned, _ = load_model(model_dir)
    aligned.eval()
    assert isinstance(aligned.image_encoder, ImageWithApertureFluxes)
    assert isinstance(aligned.spectrum_encoder, SpectrumWithBinnedFluxes)
    _, image_state = load_state(image)
    assert _same(aligned.image_encoder.encoder.state_dict(), image_state)

    images, spectra = np.stack([g.image.flux for g in galaxies[:6]]), [g.spectrum for g in galaxies[:6]]
    image_config = json.loads((image / "config.json").read_text())
    pre = PreprocessConfig.from_dict(image_config["preprocessing"])
    x = preprocess(images, pre, image_config["bands"])
    spectrum_config = json.loads((spectrum / "config.json").read_text())
    spectrum_pre = SpectrumPreprocessConfig.from_dict(spectrum_config["preprocessing"])
    with torch.no_grad():
        features = torch.cat([torch.as_tensor(astroembed.load(image, precision="32-true").embed(images)),
                              aligned.image_encoder.measure(x)], dim=1)
        expected = torch.nn.functional.normalize(aligned.image_head(features), dim=-1).numpy()
        spectrum_features = torch.cat([
            torch.as_tensor(astroembed.load(spectrum, precision="32-true").embed_spectrum(spectra)),
            aligned.spectrum_encoder.measure(prepare_spectra(spectra, spectrum_pre))], dim=1)
        expected_spectra = torch.nn.functional.normalize(aligned.spectrum_head(spectrum_features), dim=-1).numpy()
    model = astroembed.load(model_dir)  # "auto" embeds an aligned model in 32 bits
    assert model.precision == "32-true"
    np.testing.assert_allclose(model.embed(images), expected, atol=2e-5)
    np.testing.assert_allclose(model.embed_spectrum(spectra), expected_spectra, atol=2e-5)


def test_learned_feature_dropout_needs_a_rate_below_one():
    with pytest.raises(ValueError, match="learned_feature_dropout"):
        FrozenAlignConfig(learned_feature_dropout=1.0)


def test_learned_feature_dropout_drops_the_learned_features_and_never_the_measured_ones():
    # A head whose first layer reads only the 3 measured columns: with dropout on, its projections are the
    # same whatever is dropped; one that reads the learned columns changes between draws.
    from types import SimpleNamespace

    from astroembed.models.clip_model import projection_head
    from astroembed.train.clip_frozen import _project

    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    encoder = SimpleNamespace(n_measured=3)
    head = projection_head(8, 4, 2)
    with torch.no_grad():
        head[1][0].weight[:, :5] = 0.0
    head.train()
    model = SimpleNamespace(image_encoder=encoder, image_head=head)
    draws = [_project(model, "image", x, (), (), 0.5) for _ in range(2)]
    torch.testing.assert_close(draws[0], draws[1])
    with torch.no_grad():
        head[1][0].weight[:, :5] = 1.0
    draws = [_project(model, "image", x, (), (), 0.5) for _ in range(2)]
    assert not torch.allclose(draws[0], draws[1])
    head.eval()  # no dropout at inference
    torch.testing.assert_close(_project(model, "image", x, (), (), 0.5), head(x))
