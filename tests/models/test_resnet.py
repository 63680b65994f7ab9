"""ResNet-18/50: torchvision's parameter counts and layout, shapes for any band count, init."""

import math

import pytest
import torch

from astroembed.models.resnet import BasicBlock, Bottleneck, resnet18, resnet50

# torchvision's published totals (resnet18: 11,689,512; resnet50: 25,557,032) minus the 1000-class fc layer
# (512*1000+1000 and 2048*1000+1000 parameters).
TORCHVISION_NO_FC = {"resnet18": 11_689_512 - 513_000, "resnet50": 25_557_032 - 2_049_000}


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_torchvision_without_fc():
    assert TORCHVISION_NO_FC == {"resnet18": 11_176_512, "resnet50": 23_508_032}
    assert n_params(resnet18(3)) == TORCHVISION_NO_FC["resnet18"]
    assert n_params(resnet50(3)) == TORCHVISION_NO_FC["resnet50"]


@pytest.mark.parametrize("in_channels", [1, 5])
def test_extra_bands_only_change_the_stem(in_channels):
    # conv1 is 64 x C x 7 x 7; everything else is independent of the number of bands.
    extra = 64 * (in_channels - 3) * 49
    assert n_params(resnet18(in_channels)) == TORCHVISION_NO_FC["resnet18"] + extra


def test_small_input_stem_is_3x3_without_maxpool():
    m = resnet18(3, small_input=True)
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert isinstance(m.maxpool, torch.nn.Identity)
    assert n_params(m) == TORCHVISION_NO_FC["resnet18"] - 64 * 3 * 49 + 64 * 3 * 9
    with torch.no_grad():
        assert m.eval().forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 512, 4, 4)


def test_torchvision_state_dict_layout():
    # Names and shapes of torchvision's resnet50 (so its weights load), and the v1.5 stride placement.
    m = resnet50(3)
    sd = m.state_dict()
    expected = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_var": (64,),
        "layer1.0.conv1.weight": (64, 64, 1, 1),
        "layer1.0.conv3.weight": (256, 64, 1, 1),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.0.downsample.1.weight": (256,),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.5.bn3.bias": (1024,),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
    }
    for name, shape in expected.items():
        assert tuple(sd[name].shape) == shape, name
    assert not any(k.startswith("fc.") for k in sd)
    # 53 convs + 53 BNs (5 entries each: weight, bias, running mean/var, num_batches_tracked)
    assert len(sd) == 53 + 53 * 5
    for layer in (m.layer2, m.layer3, m.layer4):
        assert layer[0].conv1.stride == (1, 1) and layer[0].conv2.stride == (2, 2)
    assert len(resnet18(3).state_dict()) == 20 + 20 * 5
    assert [len(layer) for layer in (m.layer1, m.layer2, m.layer3, m.layer4)] == [3, 4, 6, 3]


@pytest.mark.parametrize("in_channels", [1, 3, 5])
def test_resnet18_output_shape(in_channels):
    m = resnet18(in_channels).eval()
    for size in (64, 96):
        with torch.no_grad():
            out = m(torch.randn(2, in_channels, size, size))
        assert m.embed_dim == 512 and out.shape == (2, 512)
        assert torch.isfinite(out).all()


def test_resnet50_output_shape():
    m = resnet50(5).eval()
    with torch.no_grad():
        out = m(torch.randn(2, 5, 64, 64))
    assert m.embed_dim == 2048 and out.shape == (2, 2048)


def test_every_parameter_gets_a_gradient():
    m = resnet18(2, small_input=True)
    m(torch.randn(2, 2, 16, 16)).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_wrong_band_count_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 5, H, W\), got \(2, 3, 64, 64\)"):
        resnet18(5)(torch.randn(2, 3, 64, 64))


def test_kaiming_fan_out_init():
    m = resnet18(3)
    w = m.layer4[1].conv2.weight  # 512 x 512 x 3 x 3: 2.4M samples
    expected_std = math.sqrt(2.0 / (512 * 9))  # kaiming normal, fan_out = out_channels * k * k, ReLU gain
    assert w.std().item() == pytest.approx(expected_std, rel=0.01)
    assert torch.all(m.bn1.weight == 1) and torch.all(m.bn1.bias == 0)
    # without zero_init_residual the last BN of each block starts at gamma = 1 too
    assert all(torch.all(b.bn2.weight == 1) for b in m.modules() if isinstance(b, BasicBlock))


def test_zero_init_residual_makes_blocks_identity():
    m = resnet18(3, zero_init_residual=True).eval()
    for block in m.modules():
        if isinstance(block, BasicBlock):
            assert torch.all(block.bn2.weight == 0)
    x = torch.rand(2, 64, 8, 8)  # non-negative, as after a ReLU
    with torch.no_grad():
        torch.testing.assert_close(m.layer1[0](x), x)
    m50 = resnet50(3, zero_init_residual=True)
    assert all(torch.all(b.bn3.weight == 0) for b in m50.modules() if isinstance(b, Bottleneck))
