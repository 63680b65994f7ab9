"""The stage module's optimizer: fused AdamW must update exactly like PyTorch's reference AdamW."""

import torch
from torch import nn

from astroembed.train.lightning_module import adamw


def test_fused_adamw_updates_like_the_reference_adamw():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(7, 5), nn.GELU(), nn.Linear(5, 3))
    reference = nn.Sequential(nn.Linear(7, 5), nn.GELU(), nn.Linear(5, 3))
    reference.load_state_dict(model.state_dict())
    ours = adamw([{"params": list(model.parameters()), "lr": 1e-2}], lr=1e-2, weight_decay=1e-4)
    theirs = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=1e-4, foreach=False)
    assert ours.param_groups[0]["fused"]  # on the CPU the fused kernel is the one used
    for _ in range(5):
        x = torch.randn(16, 7)
        for net, opt in ((model, ours), (reference, theirs)):
            opt.zero_grad()
            (net(x) ** 2).mean().backward()
            opt.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
