"""ImageEncoderConfig (plain data, JSON round trip, validation) and build_image_encoder."""

import json

import pytest
import torch

from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.models.registry import IMAGE_ARCHITECTURES

ARCHS = IMAGE_ARCHITECTURES.names()

TINY_VIT = dict(embed_dim=32, depth=1, num_heads=2)
CONFIGS = {
    "small_cnn": ImageEncoderConfig("small_cnn", in_channels=5, widths=(8, 16)),
    "resnet18": ImageEncoderConfig("resnet18", in_channels=5, small_input=True, zero_init_residual=True),
    "resnet50": ImageEncoderConfig("resnet50", in_channels=5),
    "vit_s8": ImageEncoderConfig("vit_s8", in_channels=5, image_size=32, drop_path_rate=0.1, **TINY_VIT),
}


def test_default_is_the_cpu_encoder():
    cfg = ImageEncoderConfig()
    assert cfg.arch == "small_cnn" and cfg.image_size == 64
    assert set(CONFIGS) == set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
def test_json_round_trip(arch):
    cfg = CONFIGS[arch]
    again = ImageEncoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize("arch", ["small_cnn", "resnet18", "vit_s8"])
def test_built_encoder_has_embed_dim_and_output_shape(arch):
    cfg = CONFIGS[arch]
    m = build_image_encoder(cfg.to_dict()).eval()  # a plain dict works as well as the dataclass
    with torch.no_grad():
        out = m(torch.randn(2, 5, 32, 32))
    assert out.shape == (2, m.embed_dim)
    assert m.embed_dim == {"small_cnn": 16, "resnet18": 512, "vit_s8": 32}[arch]


def test_vit_config_overrides_reach_the_model():
    m = build_image_encoder(CONFIGS["vit_s8"])
    assert len(m.blocks) == 1 and m.blocks[0].attn.num_heads == 2 and m.grid == (4, 4)
    assert m.blocks[0].drop_path.p == 0.0  # linear schedule: a single block gets rate 0
    full = build_image_encoder(ImageEncoderConfig("vit_s8", image_size=32))
    assert full.embed_dim == 384 and len(full.blocks) == 12 and full.patch_size == 8


@pytest.mark.parametrize("arch", ["small_cnn", "vit_s8"])
def test_initialisation_is_deterministic_under_a_seed(arch):
    cfg = CONFIGS[arch]
    torch.manual_seed(123)
    a = build_image_encoder(cfg).state_dict()
    torch.manual_seed(123)
    b = build_image_encoder(cfg).state_dict()
    torch.manual_seed(124)
    c = build_image_encoder(cfg).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("bad, match", [
    (dict(arch="resnet34"), "unknown image encoder arch 'resnet34'"),
    (dict(in_channels=0), "in_channels must be a positive int"),
    (dict(image_size=64.0), "image_size must be a positive int"),
    (dict(arch="resnet18", depth=4), "option depth=4 does not apply to arch 'resnet18'"),
    (dict(arch="small_cnn", small_input=True), "small_input"),
    (dict(arch="vit_s8", drop_path_rate=1.0), "drop_path_rate"),
])
def test_invalid_configs_are_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        ImageEncoderConfig(**bad)


def test_unknown_keys_in_dict_are_rejected():
    with pytest.raises(ValueError, match=r"unknown ImageEncoderConfig key\(s\) \['widht'\]"):
        ImageEncoderConfig.from_dict({"arch": "small_cnn", "widht": [8]})
