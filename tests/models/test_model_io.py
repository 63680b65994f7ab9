"""Save/load: config.json + model.safetensors, exact round trip, clear errors, reproducible content hash."""

import hashlib
import json
import pickle
import re

import pytest
import torch
from torch import nn

from astroembed.data.records import InvalidDataError
from astroembed.models import io as model_io
from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.models.io import (CONFIG_NAME, WEIGHTS_NAME, ModelFileError, build_from_config, content_hash,
                                  load_model, load_state, save_model)
from astroembed.models.registry import MODEL_TYPES

CONFIGS = [
    ImageEncoderConfig("small_cnn", in_channels=5, widths=(8, 16)),
    ImageEncoderConfig("vit_s8", in_channels=3, image_size=32, embed_dim=32, depth=2, num_heads=2),
    ImageEncoderConfig("resnet18", in_channels=1),
]
PREPROCESSING = {"bands": ["g", "r", "z"], "scale": "arcsinh", "clip": [-3.0, 30.0]}


def trained_encoder(cfg: ImageEncoderConfig, seed: int = 0) -> nn.Module:
    """An encoder whose weights and BN running statistics are no longer at their initial values."""
    torch.manual_seed(seed)
    m = build_image_encoder(cfg).train()
    with torch.no_grad():
        m(torch.randn(4, cfg.in_channels, 32, 32) * 3 + 1)  # updates BN running mean/var
        for p in m.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return m.eval()


def save(m, cfg, directory, **extras):
    return save_model(m, {"model_type": "image_encoder", "model": cfg.to_dict(), **extras}, directory)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.arch)
def test_round_trip_gives_identical_state_and_outputs(cfg, tmp_path):
    m = trained_encoder(cfg)
    out_dir = save(m, cfg, tmp_path / "enc", preprocessing=PREPROCESSING)
    assert out_dir == tmp_path / "enc"
    assert sorted(p.name for p in out_dir.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]

    config, state = load_state(out_dir)
    expected = m.state_dict()
    assert state.keys() == expected.keys()
    for k in expected:
        torch.testing.assert_close(state[k], expected[k], rtol=0, atol=0)

    loaded, config2 = load_model(out_dir)
    assert not loaded.training and config2 == config
    x = torch.randn(3, cfg.in_channels, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), m(x), rtol=0, atol=0)


def test_config_json_contents(tmp_path):
    cfg = CONFIGS[0]
    save(trained_encoder(cfg), cfg, tmp_path, preprocessing=PREPROCESSING)
    on_disk = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert on_disk["model_type"] == "image_encoder"
    assert ImageEncoderConfig.from_dict(on_disk["model"]) == cfg
    assert on_disk["preprocessing"] == PREPROCESSING
    assert on_disk["astroembed_version"] == model_io._astroembed_version() != "unknown"


def test_loading_never_unpickles(tmp_path, monkeypatch):
    cfg = CONFIGS[0]
    m = trained_encoder(cfg)
    save(m, cfg, tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("a saved model must load without torch.load / pickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    loaded, _ = load_model(tmp_path)
    torch.testing.assert_close(loaded.state_dict(), m.state_dict())


def test_truncated_weights_raise_a_clear_error(tmp_path):
    cfg = CONFIGS[0]
    save(trained_encoder(cfg), cfg, tmp_path)
    path = tmp_path / WEIGHTS_NAME
    data = path.read_bytes()
    for cut in (len(data) - 100, 50, 3):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated") as info:
            load_state(tmp_path)
        assert str(path) in str(info.value)
        assert isinstance(info.value, InvalidDataError) and isinstance(info.value, ValueError)


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / CONFIG_NAME))):
        load_state(tmp_path)
    cfg = CONFIGS[0]
    save(trained_encoder(cfg), cfg, tmp_path)
    (tmp_path / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / WEIGHTS_NAME))):
        load_state(tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / WEIGHTS_NAME))):
        content_hash(tmp_path)
    (tmp_path / CONFIG_NAME).write_text('{"model_type": "image_encoder", ')
    with pytest.raises(ModelFileError, match="not valid JSON") as info:
        load_state(tmp_path)
    assert str(tmp_path / CONFIG_NAME) in str(info.value)
    (tmp_path / CONFIG_NAME).write_text('["no", "model_type"]')
    with pytest.raises(ModelFileError, match="model_type"):
        load_state(tmp_path)


def test_weights_for_another_architecture_are_a_clear_error(tmp_path):
    small = ImageEncoderConfig("small_cnn", in_channels=5, widths=(8, 16))
    save(trained_encoder(small), small, tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    config["model"]["widths"] = [8, 32]
    (tmp_path / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match="do not match the architecture"):
        load_model(tmp_path)


def test_content_hash_is_sha256_of_the_weights_and_reproducible(tmp_path):
    cfg = CONFIGS[1]
    m = trained_encoder(cfg)
    a, b = save(m, cfg, tmp_path / "a"), save(m, cfg, tmp_path / "b", note="extras do not change the hash")
    h = content_hash(a)
    assert h == hashlib.sha256((a / WEIGHTS_NAME).read_bytes()).hexdigest()
    assert content_hash(b) == h  # same weights -> same bytes -> same hash
    with torch.no_grad():
        m.norm.bias[0] += 1e-3
    assert content_hash(save(m, cfg, tmp_path / "c")) != h


class Tied(nn.Module):
    """Tied input/output weights (as in a language model) plus a non-contiguous parameter."""

    def __init__(self, n: int = 6, d: int = 4):
        super().__init__()
        self.embed = nn.Embedding(n, d)
        self.out = nn.Linear(d, n, bias=False)
        self.out.weight = self.embed.weight
        self.mixing = nn.Parameter(torch.randn(d, 3).t())  # a transposed view: not contiguous

    def forward(self, idx):
        return self.out(self.embed(idx)) + self.mixing.sum()


@pytest.fixture
def tied_model_type():
    """Register the test model type for one test only."""
    MODEL_TYPES.register("tied_test", lambda model_cfg: Tied(**model_cfg))
    yield
    MODEL_TYPES.unregister("tied_test")


def test_tied_and_non_contiguous_tensors_round_trip(tmp_path, tied_model_type):
    torch.manual_seed(0)
    m = Tied()
    assert not m.mixing.is_contiguous()
    save_model(m, {"model_type": "tied_test", "model": {"n": 6, "d": 4}}, tmp_path)
    loaded, _ = load_model(tmp_path)
    assert loaded.out.weight is loaded.embed.weight  # the tie survives (it is structural)
    idx = torch.arange(6)
    torch.testing.assert_close(loaded(idx), m(idx))
    _, state = load_state(tmp_path)
    assert {"embed.weight", "out.weight", "mixing"} == set(state)


def test_registry_is_a_lookup_not_eval(tied_model_type):
    with pytest.raises(ValueError, match=r"unknown model_type '__import__\(\"os\"\)'; registered: \["):
        build_from_config({"model_type": '__import__("os")', "model": {}})
    assert build_from_config(CONFIGS[0].to_dict()).embed_dim == 16  # a bare encoder config works too
    assert isinstance(build_from_config({"model_type": "tied_test", "model": {}}), Tied)
    with pytest.raises(ValueError, match="needs a 'model' object"):
        build_from_config({"model_type": "tied_test"})
    with pytest.raises(ValueError, match="already registered"):
        MODEL_TYPES.register("tied_test", lambda cfg: Tied())


def test_save_rejects_configs_that_cannot_be_reloaded(tmp_path):
    m = build_image_encoder(CONFIGS[0])
    with pytest.raises(ValueError, match="model_type"):
        save_model(m, {"model": CONFIGS[0].to_dict()}, tmp_path)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_model(m, {"model_type": "image_encoder", "scale": torch.tensor(1.0)}, tmp_path)
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_model(m, {"model_type": "image_encoder", "clip": float("nan")}, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_builtin_spectrum_model_type_is_found_without_importing_it_first():
    import subprocess
    import sys

    # A fresh interpreter: nothing has imported the spectrum transformer's module, which registers it.
    script = ("import sys; from astroembed.models.io import build_from_config; "
              "assert 'astroembed.models.spectrum_transformer' not in sys.modules; "
              "m = build_from_config({'model_type': 'spectrum_transformer', 'model': {}}); "
              "print(type(m).__name__)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "SpectrumTransformer"


def test_exported_files_are_readable_by_others_unless_asked_otherwise(tmp_path):
    import stat

    cfg = CONFIGS[0]
    shared = save(trained_encoder(cfg), cfg, tmp_path / "shared")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        assert stat.S_IMODE((shared / name).stat().st_mode) == 0o644, name
    private = save_model(trained_encoder(cfg), {"model_type": "image_encoder", "model": cfg.to_dict()},
                         tmp_path / "private", file_mode=0o600)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        assert stat.S_IMODE((private / name).stat().st_mode) == 0o600, name
    assert not list(shared.glob(".*.tmp")) and not list(private.glob(".*.tmp"))
