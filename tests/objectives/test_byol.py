"""BYOL regression loss against a NumPy reference."""

import numpy as np
import torch

from astroembed.objectives import BYOLLoss


def byol_reference(p_a, p_b, z_a, z_b) -> float:
    def term(p, z):
        return np.mean([2 - 2 * (p[i] @ z[i]) / (np.linalg.norm(p[i]) * np.linalg.norm(z[i])) for i in range(len(p))])

    return term(p_a, z_b) + term(p_b, z_a)


def test_matches_numpy_reference_and_stops_target_gradient():
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(7, 5)) for _ in range(4)]
    p_a, p_b, z_a, z_b = (torch.tensor(x, requires_grad=True) for x in arrays)
    loss = BYOLLoss()(p_a, p_b, z_a, z_b)
    np.testing.assert_allclose(loss.item(), byol_reference(*arrays), rtol=1e-10)
    loss.backward()
    assert p_a.grad is not None and p_a.grad.abs().sum() > 0
    assert z_a.grad is None and z_b.grad is None


def test_zero_when_prediction_matches_target_direction():
    z = torch.randn(4, 3, dtype=torch.float64)
    assert BYOLLoss()(2 * z, 3 * z, z, z).abs().item() < 1e-12
