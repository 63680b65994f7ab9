"""Projection heads against a hand-written NumPy forward pass."""

import numpy as np
import pytest
import torch

from astroembed.models.heads import MoCoProjectionHead, SimCLRProjectionHead


def np_linear(x, layer):
    out = x @ layer.weight.detach().double().numpy().T
    return out if layer.bias is None else out + layer.bias.detach().double().numpy()


def test_simclr_head_matches_numpy_reference_in_eval_mode():
    torch.manual_seed(0)
    head = SimCLRProjectionHead(16, 32, 8)
    head.train()
    head(torch.randn(64, 16))  # move the BN running statistics away from (0, 1)
    head.eval()
    lin1, bn, _, lin2 = head
    assert lin1.bias is None and isinstance(bn, torch.nn.BatchNorm1d)
    x = np.random.default_rng(0).normal(size=(5, 16))
    h = np_linear(x, lin1)
    mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
    h = (h - mean) / np.sqrt(var + bn.eps) * bn.weight.detach().double().numpy() + bn.bias.detach().double().numpy()
    expected = np_linear(np.maximum(h, 0), lin2)
    with torch.no_grad():
        out = head(torch.as_tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_simclr_head_trains_with_batch_statistics():
    head = SimCLRProjectionHead(16, output_dim=8).train()
    assert head.hidden_dim == 16  # SimCLR default: hidden width = input width
    x = torch.randn(32, 16)
    lin1, bn, _, lin2 = head
    h = lin1(x)
    h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + bn.eps)
    torch.testing.assert_close(head(x), lin2(torch.relu(h)), rtol=1e-4, atol=1e-5)


def test_moco_head_matches_numpy_reference():
    torch.manual_seed(0)
    head = MoCoProjectionHead(16, 64, 8)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in head.modules())
    lin1, _, lin2 = head
    x = np.random.default_rng(1).normal(size=(5, 16))
    expected = np_linear(np.maximum(np_linear(x, lin1), 0), lin2)
    with torch.no_grad():
        out = head(torch.as_tensor(x, dtype=torch.float32))
    assert out.shape == (5, 8)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [SimCLRProjectionHead, MoCoProjectionHead])
def test_bad_dims_and_inputs(cls):
    with pytest.raises(ValueError, match="output_dim"):
        cls(16, 32, 0)
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        cls(16, 32, 8)(torch.randn(4, 15))
