"""Spectrum transformer: shapes, no leakage from bad or hidden pixels, save/load, and masked
modelling that learns (beats linear interpolation on synthetic spectra)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from astroembed.preprocess.spectrum import (SpectrumPreprocessConfig, patches_to_pixels, patchify,
                                                    prepare_batch, prepare_spectra)
from astroembed.models.io import load_model, save_model
from astroembed.models.spectrum_transformer import SpectrumTransformer, SpectrumTransformerConfig, sincos_positions
from astroembed.objectives.masked import contiguous_chunk_mask, masked_modelling_loss, masked_reconstruction_loss

PRE = SpectrumPreprocessConfig(wave_min=4000, wave_max=4798, wave_step=2.0)  # 400 pixels, 39 patches
REST_LINES = np.array([4100.0, 4340.0, 4500.0, 4650.0])


def synthetic_spectra(n, rng, noise=0.3):
    """Emission lines at fixed rest wavelengths (redshift 0-0.01) on a tilted, wavy continuum."""
    lam = PRE.grid
    x = (lam - lam.mean()) / np.ptp(lam)
    z = rng.uniform(0, 0.01, (n, 1, 1))
    cont = 10 * (1 + rng.uniform(-0.5, 0.5, (n, 1)) * x
                 + rng.uniform(-0.3, 0.3, (n, 1)) * np.sin(2 * np.pi * x * rng.uniform(1, 3, (n, 1))))
    amp = rng.uniform(5, 30, (n, len(REST_LINES), 1))
    lines = (amp * np.exp(-0.5 * ((lam - REST_LINES[:, None] * (1 + z)) / 4.0) ** 2)).sum(1)
    ivar = np.full((n, lam.size), 1 / noise**2)
    return cont + lines + rng.normal(size=ivar.shape) * noise, ivar


def tiny(pooling="cls", seed=0):
    torch.manual_seed(seed)
    cfg = SpectrumTransformerConfig.for_preprocess(PRE, dim=32, depth=2, num_heads=4, pooling=pooling)
    return SpectrumTransformer(cfg).eval()


@pytest.fixture
def one_thread():
    # Tiny matmuls on a shared 2-core machine run ~10x faster on one thread than fighting for two.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_shapes(pooling):
    flux, ivar = synthetic_spectra(3, np.random.default_rng(0))
    batch = prepare_batch(flux, ivar, None, PRE.grid, PRE)
    model = tiny(pooling)
    emb = model(batch)
    assert emb.shape == (3, 32) == (3, model.embed_dim) and torch.isfinite(emb).all()
    rec = model.forward_masked(batch, torch.zeros(3, PRE.n_patches, dtype=torch.bool))
    assert rec.shape == (3, PRE.n_patches, PRE.patch_size)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_masked_and_zero_ivar_pixels_never_influence_the_embedding(pooling):
    rng = np.random.default_rng(1)
    flux, ivar = synthetic_spectra(4, rng)
    mask = np.ones_like(flux, bool)
    mask[:, 120:190] = False
    ivar[:, 300:320] = 0.0
    model = tiny(pooling)
    ref = model(prepare_batch(flux, ivar, mask, PRE.grid, PRE))
    garbage = flux.copy()
    garbage[:, 120:190] = np.nan
    garbage[:, 300:320] = rng.normal(0, 1e6, (4, 20))
    out = model(prepare_batch(garbage, ivar, mask, PRE.grid, PRE))
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    # A hand-built batch with NaN where patch_valid is 0 is also safe: the model zeroes it itself.
    batch = prepare_batch(flux, ivar, mask, PRE.grid, PRE)
    batch["patch_flux"] = torch.where(batch["patch_valid"] > 0, batch["patch_flux"], torch.tensor(float("nan")))
    torch.testing.assert_close(model(batch), ref, rtol=0, atol=0)
    # ...while changing a valid pixel does change it (the test can fail)
    flux[:, 50] += 100
    assert not torch.allclose(model(prepare_batch(flux, ivar, mask, PRE.grid, PRE)), ref)


def test_hidden_patches_content_never_reaches_the_prediction():
    flux, ivar = synthetic_spectra(4, np.random.default_rng(2))
    batch = prepare_batch(flux, ivar, None, PRE.grid, PRE)
    patch_mask = contiguous_chunk_mask(PRE.n_patches, 0.3, chunk_len=4, batch=4,
                                       generator=torch.Generator().manual_seed(0))
    model = tiny()
    ref = model.forward_masked(batch, patch_mask)
    hidden = patches_to_pixels(patch_mask, PRE.patch_size, PRE.patch_stride, PRE.n_padded)
    # Change the flux of every hidden pixel, also where it shows in the overlapping visible patches.
    changed = dict(batch)
    changed["flux"] = torch.where(hidden, batch["flux"] + 50.0, batch["flux"])
    changed["patch_flux"] = patchify(changed["flux"], PRE.patch_size, PRE.patch_stride)
    torch.testing.assert_close(model.forward_masked(changed, patch_mask), ref, rtol=0, atol=0)
    assert not torch.allclose(model(changed), model(batch))  # unmasked forward does see them


def test_interpolation_baseline_decoder_starts_from_the_straight_line_and_never_sees_hidden_pixels():
    torch.manual_seed(0)
    flux, ivar = synthetic_spectra(4, np.random.default_rng(2))
    batch = prepare_batch(flux, ivar, None, PRE.grid, PRE)
    patch_mask = contiguous_chunk_mask(PRE.n_patches, 0.3, chunk_len=4, batch=4,
                                       generator=torch.Generator().manual_seed(0))
    model = SpectrumTransformer(SpectrumTransformerConfig.for_preprocess(PRE, dim=32, depth=1, num_heads=4,
                                                                         decoder_baseline="interpolation"))
    # a fresh model's head outputs 0 (zero-initialised weights): the prediction is the straight line
    pred = model.forward_masked(batch, patch_mask).detach()
    hidden = patches_to_pixels(patch_mask, PRE.patch_size, PRE.patch_stride, PRE.n_padded)
    usable = (batch["valid"].numpy() > 0) & ~hidden.numpy()
    x = np.arange(PRE.n_padded)
    line = np.stack([np.interp(x, x[u], f[u]) for f, u in zip(batch["flux"].numpy(), usable)])
    np.testing.assert_allclose(pred[patch_mask].numpy(), patchify(torch.tensor(line), PRE.patch_size,
                                                                  PRE.patch_stride)[patch_mask].numpy(), atol=1e-5)
    changed = dict(batch)  # hidden pixels' flux cannot reach the prediction through the baseline either
    changed["flux"] = torch.where(hidden, batch["flux"] + 50.0, batch["flux"])
    changed["patch_flux"] = patchify(changed["flux"], PRE.patch_size, PRE.patch_stride)
    torch.testing.assert_close(model.forward_masked(changed, patch_mask).detach(), pred, rtol=0, atol=0)
    with pytest.raises(ValueError, match="decoder_baseline"):
        SpectrumTransformerConfig(decoder_baseline="spline")


def test_masked_modelling_loss_uses_ivar_weights_on_hidden_patches_only():
    rng = np.random.default_rng(3)
    flux, ivar = synthetic_spectra(4, rng)
    ivar[:, 200:240] = 0.0
    batch = prepare_batch(flux, ivar, None, PRE.grid, PRE)
    model = tiny()
    pm = contiguous_chunk_mask(PRE.n_patches, 0.3, chunk_len=4, batch=4, generator=torch.Generator().manual_seed(1))
    loss = masked_modelling_loss(model, batch, patch_mask=pm)
    pred = model.forward_masked(batch, pm)
    w, t = batch["patch_ivar"], batch["patch_flux"]
    expected = (pm[..., None] * w * (pred - t) ** 2).sum() / (pm[..., None] * w).sum()
    torch.testing.assert_close(loss, expected)
    # Drawn masks: same generator seed, same loss.
    a = masked_modelling_loss(model, batch, generator=torch.Generator().manual_seed(5))
    b = masked_modelling_loss(model, batch, generator=torch.Generator().manual_seed(5))
    assert a.item() == b.item()


def test_config_round_trip_save_load_and_errors(tmp_path):
    model = tiny("mean", seed=3)
    cfg = model.config
    assert SpectrumTransformerConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    save_model(model, {"model_type": "spectrum_transformer", "model": cfg.to_dict(),
                       "preprocessing": PRE.to_dict()}, tmp_path / "m")
    loaded, config = load_model(tmp_path / "m")
    flux, ivar = synthetic_spectra(2, np.random.default_rng(4))
    pre = SpectrumPreprocessConfig.from_dict(config["preprocessing"])
    batch = prepare_batch(flux, ivar, None, pre.grid, pre)
    torch.testing.assert_close(loaded(batch), model(batch), rtol=0, atol=0)
    with pytest.raises(ValueError, match="num_heads"):
        SpectrumTransformerConfig(dim=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown"):
        SpectrumTransformerConfig.from_dict({"width": 3})
    other = prepare_batch(flux, ivar, None, PRE.grid, SpectrumPreprocessConfig())
    with pytest.raises(ValueError, match="expects"):
        model(other)


def test_vit_style_init():
    torch.manual_seed(0)
    model = SpectrumTransformer(SpectrumTransformerConfig.for_preprocess(PRE, dim=128, depth=1, num_heads=4))
    w = model.blocks[0].mlp.fc1.weight
    assert w.std().item() == pytest.approx(0.02, rel=0.1) and w.abs().max() <= 2.0 + 1e-6
    assert model.blocks[0].mlp.fc1.bias.abs().max() == 0
    # CLS and scale positions: truncated normal; patch positions: the sine-cosine code (sincos default)
    assert model.pos_embed[0, :2].std().item() == pytest.approx(0.02, rel=0.2)
    random = SpectrumTransformer(SpectrumTransformerConfig.for_preprocess(PRE, dim=128, depth=1, num_heads=4,
                                                                          pos_init="random"))
    assert random.pos_embed.std().item() == pytest.approx(0.02, rel=0.1)


def test_sincos_positions_match_the_transformer_formula_and_make_neighbours_similar():
    n, dim = 50, 16
    code = sincos_positions(n, dim).numpy()
    pos, k = np.arange(n)[:, None], np.arange(dim // 2)[None, :]
    angle = pos / 10000 ** (k / (dim // 2))  # Vaswani et al. 2017, sin half then cos half (MAE)
    np.testing.assert_allclose(code, np.concatenate([np.sin(angle), np.cos(angle)], 1), atol=1e-6)
    model = SpectrumTransformer(SpectrumTransformerConfig.for_preprocess(PRE, dim=128, depth=1, num_heads=4))
    patches = model.pos_embed[0, 2:].detach()
    np.testing.assert_allclose(patches.numpy(), sincos_positions(PRE.n_patches, 128).numpy())
    sim = patches @ patches.T
    # neighbours are more alike than patches far apart: what lets attention find a hidden chunk's edges
    far = PRE.n_patches // 2
    assert sim.diagonal(1).min() > 1.5 * sim.diagonal(far).max()
    with pytest.raises(ValueError, match="pos_init"):
        SpectrumTransformerConfig(pos_init="learned")


def linear_interpolation_mse(batch, patch_mask):
    """Baseline: fill the hidden pixels by linear interpolation between the nearest visible ones."""
    hidden = patches_to_pixels(patch_mask, PRE.patch_size, PRE.patch_stride, PRE.n_padded).numpy()
    flux, valid = batch["flux"].numpy(), batch["valid"].numpy() > 0
    idx = np.arange(flux.shape[1])
    filled = np.stack([np.interp(idx, idx[v & ~h], f[v & ~h]) for f, v, h in zip(flux, valid, hidden)])
    pred = patchify(torch.tensor(filled, dtype=torch.float32), PRE.patch_size, PRE.patch_stride)
    return masked_reconstruction_loss(pred, batch["patch_flux"], batch["patch_ivar"], patch_mask).item()


@pytest.mark.slow  # ~5-15 s: 100 training steps of a tiny model
def test_masked_modelling_learns_and_beats_linear_interpolation(one_thread):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = SpectrumTransformer(SpectrumTransformerConfig.for_preprocess(PRE, dim=64, depth=2, num_heads=4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(100):
        flux, ivar = synthetic_spectra(32, rng)
        batch = prepare_batch(flux, ivar, None, PRE.grid, PRE)
        loss = masked_modelling_loss(model, batch, chunk_len=4, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:3])

    model.eval()
    flux, ivar = synthetic_spectra(128, np.random.default_rng(1))
    batch = prepare_batch(flux, ivar, None, PRE.grid, PRE)
    pm = contiguous_chunk_mask(PRE.n_patches, 0.3, chunk_len=4, batch=128, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        mse_model = masked_modelling_loss(model, batch, patch_mask=pm).item()
    mse_linear = linear_interpolation_mse(batch, pm)
    print(f"training loss {np.mean(losses[:3]):.4f} -> {np.mean(losses[-10:]):.4f}; held-out masked MSE: "
          f"model {mse_model:.4f}, linear interpolation {mse_linear:.4f}")
    assert mse_model < 0.8 * mse_linear


def test_real_sdss_spectra_embed(shared_data):
    from astropy.io import fits

    files = sorted((shared_data / "spectra" / "sdss").glob("spec-*.fits"))
    if not files:
        pytest.skip("no SDSS spec files in shared data")
    spectra = []
    for path in files:
        with fits.open(path) as hdul:
            d = hdul["COADD"].data
            spectra.append(SimpleNamespace(wavelength=10 ** d["loglam"].astype(np.float64), flux=d["flux"],
                                           ivar=d["ivar"], mask=d["and_mask"] == 0))
    pre = SpectrumPreprocessConfig()
    batch = prepare_spectra(spectra, pre)
    torch.manual_seed(0)
    model = SpectrumTransformer(SpectrumTransformerConfig.for_preprocess(pre, dim=32, depth=1, num_heads=2)).eval()
    with torch.no_grad():
        emb = model(batch)
        loss = masked_modelling_loss(model, batch, generator=torch.Generator().manual_seed(0))
    assert emb.shape == (len(files), 32) and torch.isfinite(emb).all() and torch.isfinite(loss)


def test_bins_pooling_is_the_masked_mean_of_each_wavelength_range():
    from astroembed.models.spectrum_transformer import SpectrumTransformer, SpectrumTransformerConfig

    torch.manual_seed(0)
    cfg = SpectrumTransformerConfig(n_patches=12, patch_size=4, patch_stride=2, dim=8, depth=1, num_heads=2,
                                    pooling="bins", n_bins=3)
    model = SpectrumTransformer(cfg).eval()
    assert model.embed_dim == 24
    batch = {"patch_flux": torch.randn(2, 12, 4), "patch_valid": torch.ones(2, 12, 4),
             "log10_scale": torch.zeros(2)}
    batch["patch_valid"][1, 4:8] = 0  # the second spectrum has no data in the middle range
    with torch.no_grad():
        tokens = model._encode(batch["patch_flux"], batch["patch_valid"], batch["log10_scale"])[:, 2:]
        got = model(batch)
    expected0 = torch.cat([tokens[0, 0:4].mean(0), tokens[0, 4:8].mean(0), tokens[0, 8:12].mean(0)])
    torch.testing.assert_close(got[0], expected0)
    torch.testing.assert_close(got[1, :8], tokens[1, 0:4].mean(0))
    torch.testing.assert_close(got[1, 8:16], tokens[1, 4:8].mean(0))  # no data: plain mean, not NaN


def test_output_scaling_standardises_the_fitting_set_and_survives_save_load(tmp_path, one_thread):
    torch.manual_seed(0)
    model = SpectrumTransformer(SpectrumTransformerConfig.for_preprocess(PRE, dim=32, depth=1, num_heads=4,
                                                                         pooling="bins", n_bins=4))
    rng = np.random.default_rng(5)
    batches = [prepare_batch(*synthetic_spectra(16, rng), None, PRE.grid, PRE) for _ in range(3)]
    with torch.no_grad():
        raw = torch.cat([model(b) for b in batches]).double()      # identity before fitting
    model.fit_output_scaling(iter(batches))
    assert model.training  # the mode it was in comes back
    with torch.no_grad():
        scaled = torch.cat([model(b) for b in batches]).double()
    # an independent reference: numpy's per-column mean and (n - 1) standard deviation of the raw outputs
    mean, std = raw.numpy().mean(0), raw.numpy().std(0, ddof=1)
    np.testing.assert_allclose(scaled.numpy(), (raw.numpy() - mean) / std, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scaled.numpy().mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(scaled.numpy().std(0, ddof=1), 1.0, rtol=1e-4)

    save_model(model, {"model_type": "spectrum_transformer", "model": model.config.to_dict()}, tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m")
    with torch.no_grad():
        torch.testing.assert_close(loaded(batches[0]), model.eval()(batches[0]))
    with pytest.raises(ValueError, match="at least 2 spectra"):
        model.fit_output_scaling([])
