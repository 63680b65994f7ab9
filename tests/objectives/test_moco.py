"""MoCo v2: loss vs a NumPy reference, the key queue, and the momentum update."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from astroembed.objectives import MoCoLoss, MoCoQueue, cosine_momentum, momentum_update


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def moco_reference(q: np.ndarray, k: np.ndarray, queue: np.ndarray, temperature: float) -> float:
    q, k, queue = unit(q), unit(k), unit(queue)
    total = 0.0
    for i in range(len(q)):
        logits = [float(q[i] @ k[i]) / temperature] + [float(q[i] @ neg) / temperature for neg in queue]
        m = max(logits)
        total += m + math.log(sum(math.exp(v - m) for v in logits)) - logits[0]
    return total / len(q)


@pytest.mark.parametrize("n", [2, 7, 32])
@pytest.mark.parametrize(("dim", "queue_size"), [(3, 5), (16, 64)])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0])
def test_loss_matches_numpy_reference(n, dim, queue_size, temperature):
    rng = np.random.default_rng(n + dim)
    q, k, queue = rng.normal(size=(n, dim)), rng.normal(size=(n, dim)), rng.normal(size=(queue_size, dim))
    loss = MoCoLoss(temperature)(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(queue))
    np.testing.assert_allclose(loss.item(), moco_reference(q, k, queue, temperature), rtol=1e-5)


def test_loss_accepts_queue_module_and_defaults_to_moco_v2_temperature():
    queue = MoCoQueue(10, 4, generator=torch.Generator().manual_seed(0)).double()
    q, k = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    criterion = MoCoLoss()
    assert criterion.temperature == 0.2
    expected = moco_reference(q.numpy(), k.numpy(), queue.keys.numpy(), 0.2)
    np.testing.assert_allclose(criterion(q, k, queue).item(), expected, rtol=1e-5)


def test_loss_gradcheck():
    g = torch.Generator().manual_seed(1)
    args = [torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in [(3, 4), (3, 4), (5, 4)]]
    assert torch.autograd.gradcheck(MoCoLoss(0.3), tuple(args))


def test_loss_bad_arguments_raise():
    with pytest.raises(ValueError, match="negatives"):
        MoCoLoss()(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="same shape"):
        MoCoLoss()(torch.zeros(3, 4), torch.zeros(2, 4), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="temperature"):
        MoCoLoss(0.0)


def distinct_keys(start: int, n: int, dim: int = 3) -> torch.Tensor:
    """Unit keys whose first coordinate encodes their arrival number (so order can be read back)."""
    ids = torch.arange(start, start + n, dtype=torch.float64)
    keys = torch.stack([ids, torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)], 1)
    return keys[:, :dim]


def simulate_ring(size: int, batches: list[torch.Tensor], initial: torch.Tensor) -> tuple[np.ndarray, int]:
    """Reference FIFO: write keys one at a time at the pointer, then advance it."""
    buf, ptr = [row for row in unit(initial.numpy())], 0
    for batch in batches:
        for key in unit(batch.numpy()):
            buf[ptr] = key
            ptr = (ptr + 1) % size
    return np.stack(buf), ptr


@pytest.mark.parametrize(
    ("size", "batch_sizes"), [(6, [2, 2, 2, 2]), (5, [2, 2, 2]), (5, [3, 4]), (4, [7]), (4, [3, 9, 1])]
)
def test_queue_fifo_order_and_wraparound(size, batch_sizes):
    queue = MoCoQueue(size, 3, generator=torch.Generator().manual_seed(0)).double()
    initial = queue.keys.clone()
    batches, start = [], 1
    for b in batch_sizes:
        batches.append(distinct_keys(start, b))
        start += b
        queue.enqueue(batches[-1])
    expected, ptr = simulate_ring(size, batches, initial)
    np.testing.assert_allclose(queue.keys.numpy(), expected, rtol=1e-12)
    assert queue.ptr.item() == ptr
    np.testing.assert_allclose(queue.keys.norm(dim=1).numpy(), 1.0)


def test_queue_readable_wraparound_example():
    queue = MoCoQueue(5, 3).double()
    for start in (1, 3, 5):  # keys 1..6 into 5 slots: key 6 overwrites key 1 in slot 0
        queue.enqueue(distinct_keys(start, 2))
    ids = (queue.keys[:, 0] / queue.keys[:, 1]).round().tolist()
    assert ids == [6, 2, 3, 4, 5]
    assert queue.ptr.item() == 1


def test_queue_is_saved_in_state_dict():
    queue = MoCoQueue(8, 3)
    queue.enqueue(torch.randn(3, 3))
    restored = MoCoQueue(8, 3)
    restored.load_state_dict(queue.state_dict())
    torch.testing.assert_close(restored.keys, queue.keys)
    assert restored.ptr.item() == 3
    assert set(queue.state_dict()) == {"keys", "ptr"}


def test_queue_rejects_wrong_dim():
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        MoCoQueue(8, 3).enqueue(torch.randn(2, 4))


def test_momentum_update_formula_params_only():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).double()
    target = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).double()
    target[1].running_mean.fill_(5.0)
    before = {k: v.detach().numpy().copy() for k, v in target.named_parameters()}
    online_np = {k: v.detach().numpy().copy() for k, v in online.named_parameters()}
    momentum_update(online, target, m=0.9)
    for name, p in target.named_parameters():
        np.testing.assert_allclose(p.detach().numpy(), 0.9 * before[name] + 0.1 * online_np[name], rtol=1e-12)
        assert not p.requires_grad or p.grad is None
    assert torch.all(target[1].running_mean == 5.0)  # buffers are the target's own


def test_momentum_update_extremes_and_errors():
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    old = target.weight.detach().clone()
    momentum_update(online, target, m=1.0)
    torch.testing.assert_close(target.weight, old)
    momentum_update(online, target, m=0.0)
    torch.testing.assert_close(target.weight, online.weight)
    with pytest.raises(ValueError, match="momentum"):
        momentum_update(online, target, m=1.5)
    with pytest.raises(ValueError, match="different parameters"):
        momentum_update(online, nn.Linear(3, 2, bias=False), m=0.5)
    with pytest.raises(ValueError, match="weight"):
        momentum_update(online, nn.Linear(4, 2), m=0.5)


def test_cosine_momentum_schedule():
    assert cosine_momentum(0, 100, 0.99, 1.0) == pytest.approx(0.99)
    assert cosine_momentum(50, 100, 0.99, 1.0) == pytest.approx(0.995)
    assert cosine_momentum(100, 100, 0.99, 1.0) == pytest.approx(1.0)
    assert cosine_momentum(500, 100, 0.99, 1.0) == pytest.approx(1.0)
