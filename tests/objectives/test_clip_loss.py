"""CLIP symmetric InfoNCE against a hand-written NumPy reference."""

import math

import numpy as np
import pytest
import torch

from astroembed.objectives import CLIPLoss


def logsumexp(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def clip_reference(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """Mean of the a->b and b->a cross-entropies; pair i's target is column i."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    n = len(a)
    a_to_b = b_to_a = 0.0
    for i in range(n):
        row_a = [scale * float(a[i] @ b[j]) for j in range(n)]
        row_b = [scale * float(b[i] @ a[j]) for j in range(n)]
        a_to_b += logsumexp(row_a) - row_a[i]
        b_to_a += logsumexp(row_b) - row_b[i]
    return (a_to_b / n + b_to_a / n) / 2


@pytest.mark.parametrize("n", [2, 7, 32])
@pytest.mark.parametrize("dim", [3, 16])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
def test_matches_numpy_reference(n, dim, temperature):
    rng = np.random.default_rng(n * 100 + dim)
    a, b = rng.normal(size=(n, dim)), rng.normal(size=(n, dim))
    criterion = CLIPLoss(init_temperature=temperature).double()
    loss = criterion(torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_allclose(loss.item(), clip_reference(a, b, 1.0 / temperature), rtol=1e-5)


def test_logit_scale_initialised_to_clip_value():
    criterion = CLIPLoss()
    assert isinstance(criterion.logit_scale, torch.nn.Parameter)
    assert criterion.logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_swapping_modalities_leaves_loss_unchanged():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(9, 5, generator=g), torch.randn(9, 5, generator=g)
    criterion = CLIPLoss()
    torch.testing.assert_close(criterion(a, b), criterion(b, a))


def test_aligned_separated_embeddings_give_near_zero_loss():
    a = torch.eye(6, dtype=torch.float64)
    criterion = CLIPLoss(init_temperature=0.01).double()
    out = criterion(a, 2.0 * a, return_details=True)
    assert out.loss.item() < 1e-30
    assert out.accuracy.item() == 1.0
    shuffled = criterion(a, a.roll(1, dims=0), return_details=True)
    assert shuffled.loss.item() > 50
    assert shuffled.accuracy.item() == 0.0


def test_logit_scale_is_clamped_to_max_but_keeps_its_gradient():
    criterion = CLIPLoss(max_logit_scale=100.0).double()
    with torch.no_grad():
        criterion.logit_scale.fill_(10.0)  # as if an optimiser step had overshot
    g = torch.Generator().manual_seed(2)
    a = torch.randn(4, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4, 3, generator=g, dtype=torch.float64)
    out = criterion(a, b, return_details=True)
    assert criterion.logit_scale.item() == pytest.approx(math.log(100.0))
    assert out.logit_scale.item() == pytest.approx(100.0)
    np.testing.assert_allclose(out.loss.item(), clip_reference(a.numpy(), b.numpy(), 100.0), rtol=1e-5)
    out.loss.backward()
    # Random pairs at scale 100: the loss wants a smaller scale, and the gradient must say so.
    assert criterion.logit_scale.grad.item() > 0


def test_init_temperature_below_bound_is_clamped():
    assert CLIPLoss(init_temperature=0.001).logit_scale.item() == pytest.approx(math.log(100.0))


def test_fixed_scale_has_no_parameters_but_is_saved():
    criterion = CLIPLoss(init_temperature=0.1, learnable=False)
    assert list(criterion.parameters()) == []
    assert "logit_scale" in criterion.state_dict()


def test_details_logits_are_scaled_cosines():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    out = CLIPLoss(init_temperature=0.5).double()(a, b, return_details=True)
    cos = torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=2)
    torch.testing.assert_close(out.logits_a, 2.0 * cos)
    torch.testing.assert_close(out.logits_b, 2.0 * cos.T)


def test_gradcheck_embeddings_and_logit_scale():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor(1.2, dtype=torch.float64, requires_grad=True)
    criterion = CLIPLoss().double()

    def f(a, b, log_scale):
        return torch.func.functional_call(criterion, {"logit_scale": log_scale}, (a, b))

    assert torch.autograd.gradcheck(f, (a, b, log_scale))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="same shape"):
        CLIPLoss()(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="at least 2"):
        CLIPLoss()(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="init_temperature"):
        CLIPLoss(init_temperature=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_matches_the_reference_on_the_valid_pairs_only(seed):
    # A galaxy seen in one modality only is neither a query nor a negative: the masked loss is the
    # reference loss of the valid rows alone.
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(9, 4)), rng.normal(size=(9, 4))
    valid = rng.random(9) < 0.6
    valid[:2] = True
    criterion = CLIPLoss(init_temperature=0.2).double()
    loss = criterion(torch.from_numpy(a), torch.from_numpy(b), mask=torch.from_numpy(valid))
    np.testing.assert_allclose(loss.item(), clip_reference(a[valid], b[valid], 5.0), rtol=1e-6)
    full = criterion(torch.from_numpy(a), torch.from_numpy(b), mask=torch.ones(9, dtype=torch.bool))
    np.testing.assert_allclose(full.item(), clip_reference(a, b, 5.0), rtol=1e-6)


def test_mask_without_valid_pairs_gives_zero_loss_with_a_graph():
    a = torch.randn(4, 3, requires_grad=True)
    loss = CLIPLoss()(a, torch.randn(4, 3), mask=torch.zeros(4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(a.grad, torch.zeros_like(a))
    with pytest.raises(ValueError, match="mask must have shape"):
        CLIPLoss()(a, torch.randn(4, 3), mask=torch.ones(3, dtype=torch.bool))
