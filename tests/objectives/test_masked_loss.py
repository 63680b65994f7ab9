"""Contiguous-chunk masks and the ivar-weighted masked reconstruction loss."""

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from astroembed.objectives import contiguous_chunk_mask, masked_reconstruction_loss


def runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True."""
    out, start = [], None
    for i, v in enumerate(list(row) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i - start))
            start = None
    return out


@pytest.mark.parametrize(
    ("n_patches", "fraction", "kwargs", "expected_lengths"),
    [
        (40, 0.3, {"n_chunks": 3}, [4, 4, 4]),
        (40, 0.35, {"n_chunks": 3}, [4, 5, 5]),
        (50, 0.5, {"chunk_len": 10}, [10, 10, 5]),
        (20, 0.1, {"n_chunks": 1}, [2]),
        (10, 1.0, {"n_chunks": 1}, [10]),
    ],
)
def test_mask_has_exact_fraction_and_chunk_lengths(n_patches, fraction, kwargs, expected_lengths):
    mask = contiguous_chunk_mask(n_patches, fraction, batch=64, generator=torch.Generator().manual_seed(0), **kwargs)
    assert mask.shape == (64, n_patches) and mask.dtype == torch.bool
    for row in mask.numpy():
        assert row.sum() == round(fraction * n_patches)
        assert sorted(length for _, length in runs(row)) == sorted(expected_lengths)
    if fraction < 1:
        assert len({tuple(row) for row in mask.numpy()}) > 1  # rows drawn independently


def test_mask_layouts_are_uniform():
    # Brute force every layout of 2 separate single-patch chunks in 6 patches: C(5, 2) = 10 layouts.
    layouts = [c for c in itertools.combinations(range(6), 2) if c[1] - c[0] > 1]
    assert len(layouts) == 10
    mask = contiguous_chunk_mask(6, 2 / 6, n_chunks=2, batch=20000, generator=torch.Generator().manual_seed(1))
    counts = Counter(tuple(np.flatnonzero(row)) for row in mask.numpy())
    assert set(counts) == set(layouts)
    freqs = np.array([counts[c] for c in layouts]) / 20000
    np.testing.assert_allclose(freqs, 0.1, atol=0.015)


def test_mask_reproducible_with_generator_and_zero_fraction():
    a = contiguous_chunk_mask(30, 0.4, n_chunks=2, batch=4, generator=torch.Generator().manual_seed(5))
    b = contiguous_chunk_mask(30, 0.4, n_chunks=2, batch=4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not contiguous_chunk_mask(30, 0.0, chunk_len=3).any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_patches": 10, "mask_fraction": 0.5}, "exactly one"),
        ({"n_patches": 10, "mask_fraction": 0.5, "n_chunks": 2, "chunk_len": 2}, "exactly one"),
        ({"n_patches": 10, "mask_fraction": 1.5, "n_chunks": 2}, "mask_fraction"),
        ({"n_patches": 10, "mask_fraction": 0.8, "n_chunks": 4}, "cannot place"),
        ({"n_patches": 10, "mask_fraction": 0.5, "chunk_len": 0}, "chunk_len"),
    ],
)
def test_mask_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        contiguous_chunk_mask(**kwargs)


def loss_reference(pred, target, weight, mask) -> float:
    num = den = 0.0
    b, p, length = pred.shape
    for i in range(b):
        for j in range(p):
            if not mask[i, j]:
                continue
            for k in range(length):
                if weight[i, j, k] > 0:
                    num += weight[i, j, k] * (pred[i, j, k] - target[i, j, k]) ** 2
                    den += weight[i, j, k]
    return num / den


@pytest.mark.parametrize(("b", "p", "length"), [(2, 5, 3), (7, 8, 4), (32, 4, 2)])
def test_loss_matches_numpy_reference(b, p, length):
    rng = np.random.default_rng(b * p)
    pred, target = rng.normal(size=(b, p, length)), rng.normal(size=(b, p, length))
    weight = rng.exponential(size=(b, p, length)) * (rng.random((b, p, length)) > 0.2)  # some zero-ivar pixels
    target[weight == 0] = np.nan  # bad pixels often carry NaN flux; they must not matter
    mask = rng.random((b, p)) < 0.5
    mask[0, 0] = True
    weight[0, 0, 0] = 1.0
    target[0, 0, 0] = 0.0
    loss = masked_reconstruction_loss(*(torch.from_numpy(x) for x in (pred, target, weight, mask)))
    np.testing.assert_allclose(loss.item(), loss_reference(pred, target, weight, mask), rtol=1e-10)


def test_unmasked_and_zero_weight_pixels_do_not_matter_and_get_no_gradient():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    weight = torch.rand(2, 4, 3, generator=g, dtype=torch.float64) + 0.1
    weight[1, 2] = 0.0  # a masked patch with no information at all
    target[1, 2] = float("nan")
    mask = torch.tensor([[True, False, True, False], [False, False, True, True]])
    loss = masked_reconstruction_loss(pred, target, weight, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.all(pred.grad[~mask] == 0)
    assert torch.all(pred.grad[1, 2] == 0)
    assert torch.all(pred.grad[0, 0] != 0)
    changed = pred.detach().clone()
    changed[~mask] += 100.0
    changed[1, 2] += 100.0
    torch.testing.assert_close(masked_reconstruction_loss(changed, target, weight, mask), loss.detach())


def test_no_weight_gives_zero_loss_with_grad_path():
    pred = torch.randn(2, 3, 4, requires_grad=True)
    all_masked = torch.ones(2, 3, dtype=torch.bool)
    loss = masked_reconstruction_loss(pred, torch.randn(2, 3, 4), torch.zeros(2, 3, 4), all_masked)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(pred.grad == 0)


def test_loss_gradcheck():
    g = torch.Generator().manual_seed(2)
    pred = torch.randn(2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 3, 2, generator=g, dtype=torch.float64)
    weight = torch.rand(2, 3, 2, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True, False, True], [True, True, False]])
    assert torch.autograd.gradcheck(lambda x: masked_reconstruction_loss(x, target, weight, mask), (pred,))


def test_loss_bad_shapes_raise():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="same shape"):
        masked_reconstruction_loss(x, torch.zeros(2, 3, 5), x, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must have shape"):
        masked_reconstruction_loss(x, x, x, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        masked_reconstruction_loss(x, x, x, torch.ones(2, 3))
    with pytest.raises(ValueError, match="3-D"):
        masked_reconstruction_loss(x[0], x[0], x[0], torch.ones(3, dtype=torch.bool))
