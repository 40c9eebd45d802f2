"""The cache-blocked decay step: bit for bit the whole-tensor passes, whichever way the tensors are cut."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import syre_rl.core as core
from syre_rl.core import Syre

GAMMA, LR = 0.05, 0.01


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # 7x30 and 30x31 weights span several 100-element blocks; the biases share blocks whole.
    return nn.Sequential(nn.Linear(7, 30), nn.ReLU(), nn.Linear(30, 31), nn.ReLU(), nn.Linear(31, 2))


def expected_step(net: nn.Module, syre: Syre, mode: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The formula as whole-tensor passes (the unblocked step), on copies: new gradients and weights."""
    grads, weights = [], []
    anchors, diags = syre.anchors, syre.diagonals
    for name, p in net.named_parameters():
        g, w, a = p.grad.clone(), p.detach().clone(), anchors[name]
        d = diags[name] if diags is not None else None
        if mode == "coupled":
            if d is None:
                g.add_(w, alpha=GAMMA).add_(a, alpha=-GAMMA)
            else:
                g.addcmul_(d, w, value=GAMMA).addcmul_(d, a, value=-GAMMA)
        elif d is None:
            w.lerp_(a, LR * GAMMA)
        else:
            w.addcmul_(d, w, value=-LR * GAMMA).addcmul_(d, a, value=LR * GAMMA)
        grads.append(g)
        weights.append(w)
    return grads, weights


class Recorder(torch.optim.Optimizer):
    """Applies nothing: ``step()`` only runs the step hooks, so what syre did can be read off directly."""

    def __init__(self, params) -> None:
        super().__init__(params, {"lr": LR})

    def step(self, closure=None) -> None:
        return None


@pytest.mark.parametrize("block", [100, 1000, core.BLOCK_ELEMENTS])
@pytest.mark.parametrize("spread", [0.0, 0.3])
@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_blocked_step_equals_whole_tensor_passes_bit_for_bit(monkeypatch, block, spread, mode) -> None:
    monkeypatch.setattr(core, "BLOCK_ELEMENTS", block)
    net = model()
    syre = Syre(net, gamma=GAMMA, sigma0=0.5, spread=spread, mode=mode, seed=3)
    opt = syre.attach(Recorder(net.parameters()))
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):  # the plan is built once; the second step reuses it on fresh gradients
        for p in net.parameters():
            p.grad = torch.randn(p.shape, generator=gen)
        grads, weights = expected_step(net, syre, mode)
        opt.step()
        for p, g, w in zip(net.parameters(), grads, weights):
            assert torch.equal(p.grad, g) and torch.equal(p.detach(), w)
    plan = syre._lists()[0][-1]
    total = sum(p.numel() for p in net.parameters())
    if block < total:
        assert len(plan) >= total // block  # really cut
        assert max(sum(b - a for _, a, b in blk) for blk in plan) <= block
        pieces = sorted((k, a, b) for blk in plan for k, a, b in blk)  # every element exactly once
        for k, p in enumerate(net.parameters()):
            spans = [(a, b) for kk, a, b in pieces if kk == k]
            assert spans[0][0] == 0 and spans[-1][1] == p.numel()
            assert all(b1 == a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    else:
        assert plan is None  # a model within one block keeps the plain whole-list passes


def test_gradient_laid_out_unlike_its_weight_falls_back_to_whole_tensors(monkeypatch) -> None:
    monkeypatch.setattr(core, "BLOCK_ELEMENTS", 100)
    net = model()
    syre = Syre(net, gamma=GAMMA, sigma0=0.5, mode="coupled", seed=3)
    opt = syre.attach(Recorder(net.parameters()))
    for p in net.parameters():
        p.grad = torch.randn(p.shape[::-1]).T if p.dim() == 2 else torch.randn(p.shape)  # transposed layout
    grads, _ = expected_step(net, syre, "coupled")
    opt.step()
    assert not net[2].weight.grad.is_contiguous()
    for p, g in zip(net.parameters(), grads):
        assert torch.equal(p.grad, g)
