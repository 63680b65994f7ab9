"""small_cnn: the CPU default encoder."""

import pytest
import torch

from astroembed.models.small_cnn import SmallCNN


def expected_params(in_channels, widths):
    """Convs (3x3, no bias) + BN (gamma, beta) per layer, counted by hand from the documented layout."""
    total = in_channels * widths[0] * 9 + 2 * widths[0]  # stem
    c_in = widths[0]
    for w in widths:
        total += c_in * w * 9 + 2 * w + w * w * 9 + 2 * w
        c_in = w
    return total


@pytest.mark.parametrize("in_channels", [1, 3, 5])
def test_parameter_count(in_channels):
    m = SmallCNN(in_channels)
    n = sum(p.numel() for p in m.parameters())
    assert n == expected_params(in_channels, (32, 64, 128, 256))
    assert 0.9e6 < n < 1.5e6  # "about a million": small enough for CPU pretraining


@pytest.mark.parametrize("in_channels", [1, 3, 5])
@pytest.mark.parametrize("size", [64, 96])
def test_output_shape(in_channels, size):
    m = SmallCNN(in_channels).eval()
    with torch.no_grad():
        out = m(torch.randn(3, in_channels, size, size))
    assert m.embed_dim == 256 and out.shape == (3, 256)


def test_custom_widths_and_gradients():
    m = SmallCNN(2, widths=(8, 16))
    out = m(torch.randn(4, 2, 32, 32))
    assert m.embed_dim == 16 and out.shape == (4, 16)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_bad_arguments():
    with pytest.raises(ValueError, match="widths"):
        SmallCNN(3, widths=())
    with pytest.raises(ValueError, match="in_channels"):
        SmallCNN(0)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        SmallCNN(3)(torch.randn(3, 64, 64))
