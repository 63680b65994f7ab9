"""Adding an image architecture is one new file plus its registration: configs, training and loading
take it with no other edit (the file is tests/models/toy_architecture.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.models.io import load_model, save_model
from astroembed.models.registry import IMAGE_ARCHITECTURES


@pytest.fixture
def toy_architecture():
    spec = importlib.util.spec_from_file_location("toy_architecture", Path(__file__).with_name("toy_architecture.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers "toy_mean"
    yield module
    IMAGE_ARCHITECTURES.unregister("toy_mean")


def test_unregistered_arch_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match=r"unknown image encoder arch 'toy_mean'; choose one of \['resnet18'"):
        ImageEncoderConfig(arch="toy_mean")


def test_a_registered_architecture_builds_saves_and_loads(tmp_path, toy_architecture):
    config = ImageEncoderConfig(arch="toy_mean", in_channels=4)
    encoder = build_image_encoder(config)
    assert isinstance(encoder, toy_architecture.ToyEncoder)
    with pytest.raises(ValueError, match="option widths=.* does not apply to arch 'toy_mean'"):
        ImageEncoderConfig(arch="toy_mean", widths=(8,))
    save_model(encoder, {"model_type": "image_encoder", "model": config.to_dict()}, tmp_path)
    loaded, _ = load_model(tmp_path)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(3, 4, 16, 16)).astype(np.float32))
    torch.testing.assert_close(loaded(x), encoder.eval()(x))


def test_a_registered_architecture_trains_in_the_image_stage(toy_architecture):
    from astroembed.train.image import ImagePretrainConfig, ImageSSLModule

    config = ImagePretrainConfig.from_dict({"encoder": {"arch": "toy_mean", "in_channels": 3},
                                            "projection_dim": 4, "projection_hidden": 8})
    networks = ImageSSLModule(config, ("g", "r", "z"))
    views = torch.randn(2, 6, 3, 8, 8)
    loss = networks.training_loss(views[0], views[1])
    loss.backward()
    assert torch.isfinite(loss) and networks.encoder.proj.weight.grad is not None
