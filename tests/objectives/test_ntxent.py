"""NT-Xent (SimCLR) against a hand-written NumPy reference."""

import math

import numpy as np
import pytest
import torch

from astroembed.objectives import NTXentLoss


def logsumexp(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def ntxent_reference(z_a: np.ndarray, z_b: np.ndarray, temperature: float) -> float:
    """SimCLR eq. (1) written out: every one of the 2N embeddings is an anchor once."""
    z = np.concatenate([z_a, z_b]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    two_n, n = len(z), len(z) // 2
    total = 0.0
    for i in range(two_n):
        positive = i + n if i < n else i - n
        others = [float(z[i] @ z[j]) / temperature for j in range(two_n) if j != i]
        total += logsumexp(others) - float(z[i] @ z[positive]) / temperature
    return total / two_n


@pytest.mark.parametrize("n", [2, 7, 32])
@pytest.mark.parametrize("dim", [3, 16])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
def test_matches_numpy_reference(n, dim, temperature):
    rng = np.random.default_rng(n * 100 + dim)
    z_a, z_b = rng.normal(size=(n, dim)), rng.normal(size=(n, dim))
    loss = NTXentLoss(temperature)(torch.from_numpy(z_a), torch.from_numpy(z_b))
    assert loss.dtype == torch.float64
    np.testing.assert_allclose(loss.item(), ntxent_reference(z_a, z_b, temperature), rtol=1e-5)


def test_scale_invariant_and_view_symmetric():
    # Cosine similarity: rescaling rows changes nothing; swapping the views permutes the anchors only.
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    loss = NTXentLoss(0.2)
    ref = loss(z_a, z_b)
    row_scale = 0.5 + torch.rand(6, 1, generator=g, dtype=torch.float64)
    torch.testing.assert_close(loss(3.0 * z_a, row_scale * z_b), ref)
    torch.testing.assert_close(loss(z_b, z_a), ref)


def test_aligned_separated_embeddings_give_near_zero_loss():
    z = torch.eye(8, dtype=torch.float64)[:5]  # orthogonal, one per galaxy, both views identical
    assert NTXentLoss(0.01)(z, z.clone()).item() < 1e-30
    # ...while mismatched pairs are heavily penalised, so the test above can fail.
    assert NTXentLoss(0.01)(z, z.roll(1, dims=0)).item() > 50


def test_gradcheck():
    g = torch.Generator().manual_seed(1)
    z_a = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    z_b = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(NTXentLoss(0.3), (z_a, z_b))


@pytest.mark.parametrize(
    ("z_a", "z_b", "message"),
    [
        (torch.zeros(4, 3), torch.zeros(4, 2), "same shape"),
        (torch.zeros(4), torch.zeros(4), "2-D"),
        (torch.zeros(1, 3), torch.zeros(1, 3), "at least 2"),
        (torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3, dtype=torch.long), "floating"),
    ],
)
def test_bad_arguments_raise(z_a, z_b, message):
    with pytest.raises(ValueError, match=message):
        NTXentLoss()(z_a, z_b)


@pytest.mark.parametrize("temperature", [0.0, -0.1])
def test_bad_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature)
