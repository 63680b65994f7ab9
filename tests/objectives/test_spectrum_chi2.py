"""The decoder's chi^2 loss against a NumPy loop."""

import numpy as np
import pytest
import torch

from astroembed.objectives.spectrum_chi2 import spectrum_chi2_loss


def reference(pred, t, flux, ivar, valid, t_true, scale_weight, systematic):
    total = 0.0
    for n in range(len(flux)):
        chi2, count = 0.0, 0
        for j in range(flux.shape[1]):
            if valid[n, j]:
                w = ivar[n, j] / (1 + ivar[n, j] * systematic ** 2)
                chi2 += w * (pred[n, j] - flux[n, j]) ** 2
                count += 1
        total += chi2 / max(count, 1)
    return total / len(flux) + scale_weight * np.mean((t - t_true) ** 2)


@pytest.mark.parametrize("scale_weight,systematic", [(1.0, 0.0), (0.3, 0.05), (0.0, 1.0)])
def test_matches_a_numpy_loop(scale_weight, systematic):
    rng = np.random.default_rng(1)
    pred, flux = rng.normal(size=(5, 17)), rng.normal(size=(5, 17))
    ivar = rng.uniform(0, 400, size=(5, 17))
    valid = rng.uniform(size=(5, 17)) > 0.3
    valid[2] = False  # a galaxy with no valid pixel adds 0
    t, t_true = rng.normal(size=5), rng.normal(size=5)
    got = spectrum_chi2_loss(*(torch.as_tensor(a) for a in (pred, t, flux, ivar, valid, t_true)),
                             scale_weight=scale_weight, systematic=systematic)
    assert float(got) == pytest.approx(reference(pred, t, flux, ivar, valid, t_true, scale_weight, systematic),
                                       rel=1e-10)


def test_masked_pixels_do_not_count_and_shapes_are_checked():
    flux = torch.zeros(1, 4)
    pred = torch.tensor([[0.0, 0.0, 0.0, 1e6]])
    valid = torch.tensor([[True, True, True, False]])
    loss = spectrum_chi2_loss(pred, torch.zeros(1), flux, torch.ones(1, 4), valid, torch.zeros(1))
    assert float(loss) == 0.0
    with pytest.raises(ValueError, match="one \\(N, L\\) shape"):
        spectrum_chi2_loss(pred[:, :3], torch.zeros(1), flux, torch.ones(1, 4), valid, torch.zeros(1))
