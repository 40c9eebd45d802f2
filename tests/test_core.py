"""The method's exact checks: equivalence with the reparametrised form, symmetry breaking, ridge closed form,
state round trips and clear errors."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from syre_rl.core import Syre

GAMMA = 0.05


def mlp(seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3)).to(dtype)


def regression_data(n: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return x, y


class Translate(nn.Module):
    """``theta -> theta + theta0``: the paper's literal reparametrisation."""

    def __init__(self, theta0: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("theta0", theta0.clone())

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return theta + self.theta0

    def right_inverse(self, w: torch.Tensor) -> torch.Tensor:
        return w - self.theta0


def reparametrised(
    model: nn.Module, anchors: dict[str, torch.Tensor]
) -> tuple[nn.Module, dict[str, nn.Parameter]]:
    """A copy of ``model`` computing ``f(theta + theta0)``, with the same effective weights; returns theta by name."""
    literal = copy.deepcopy(model)
    for name, theta0 in anchors.items():
        module_name, attr = name.rsplit(".", 1)
        parametrize.register_parametrization(literal.get_submodule(module_name), attr, Translate(theta0))
    thetas = {}
    for name in anchors:
        module_name, attr = name.rsplit(".", 1)
        thetas[name] = literal.get_submodule(module_name).parametrizations[attr].original
    return literal, thetas


def effective_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        n: getattr(model.get_submodule(n.rsplit(".", 1)[0]), n.rsplit(".", 1)[1]).detach().clone()
        for n, _ in mlp().named_parameters()
    }


OPTIMIZERS = {
    "sgd-momentum": (torch.optim.SGD, dict(lr=0.05, momentum=0.9), "coupled"),
    "adam": (torch.optim.Adam, dict(lr=0.01), "coupled"),
    "adamw": (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.0), "decoupled"),  # syre replaces its decay
}


@pytest.mark.parametrize("spread", [0.0, 0.3])
@pytest.mark.parametrize("optimizer_name", list(OPTIMIZERS))
def test_anchor_form_equals_reparametrisation(optimizer_name: str, spread: float) -> None:
    """Anchor form and f(theta + theta0) + gamma theta^T D theta agree step for step (50 steps, float64)."""
    optimizer_cls, kwargs, mode = OPTIMIZERS[optimizer_name]
    model = mlp()
    syre = Syre(model, gamma=GAMMA, sigma0=0.5, spread=spread, mode=mode, seed=3, init_offset=True)
    literal, thetas = reparametrised(model, syre.anchors)
    diags = syre.diagonals or {n: torch.ones_like(t) for n, t in thetas.items()}
    opt = syre.attach(optimizer_cls(model.parameters(), **kwargs))
    ref_kwargs = dict(kwargs, weight_decay=0.0)
    ref = optimizer_cls(literal.parameters(), **ref_kwargs)
    x, y = regression_data()
    for step in range(50):
        batch = slice((step * 16) % 64, (step * 16) % 64 + 16)
        opt.zero_grad()
        loss = (model(x[batch]) - y[batch]).square().mean()
        loss.backward()
        opt.step()

        ref.zero_grad()
        data_loss = (literal(x[batch]) - y[batch]).square().mean()
        ref_loss = data_loss
        if mode == "coupled":  # L2 in the gradient: the penalty's gradient is gamma D theta
            ref_loss = ref_loss + GAMMA / 2 * sum((diags[n] * t.square()).sum() for n, t in thetas.items())
        ref_loss.backward()
        if mode == "decoupled":  # AdamW's order: decay theta, then the Adam update
            with torch.no_grad():
                for n, t in thetas.items():
                    t.mul_(1 - kwargs["lr"] * GAMMA * diags[n])
        ref.step()
        assert abs(loss.item() - data_loss.item()) < 1e-9
    for name, w in model.named_parameters():
        theta0 = syre.anchors[name]
        torch.testing.assert_close(w.detach(), (thetas[name] + theta0).detach(), rtol=0, atol=1e-9)
        assert (w.detach() - theta0).abs().max() > 1e-3  # it trained: the check is not vacuous


def duplicated_net(seed: int = 0) -> nn.Sequential:
    """A two-layer ReLU net whose hidden units come in identical pairs (in-weights, bias, out-weights)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).double()
    with torch.no_grad():
        net[0].weight[4:] = net[0].weight[:4]
        net[0].bias[4:] = net[0].bias[:4]
        net[2].weight[:, 4:] = net[2].weight[:, :4]
    return net


def pair_separation(net: nn.Sequential) -> float:
    """Largest distance between the two members of each originally identical pair of units."""
    first = torch.cat([net[0].weight[:4], net[0].bias[:4, None], net[2].weight[:, :4].T], dim=1)
    second = torch.cat([net[0].weight[4:], net[0].bias[4:, None], net[2].weight[:, 4:].T], dim=1)
    return float((first - second).abs().max().detach())


def train_duplicated(
    optimizer_cls: type, lr: float, syre_kwargs: dict | None, weight_decay: float = 0.0
) -> float:
    net = duplicated_net()
    opt = optimizer_cls(net.parameters(), lr=lr, weight_decay=weight_decay)
    if syre_kwargs is not None:
        Syre(net, seed=7, **syre_kwargs).attach(opt)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(128, 4, generator=gen, dtype=torch.float64)
    y = torch.sin(x @ torch.randn(4, 2, generator=gen, dtype=torch.float64))
    assert pair_separation(net) == 0.0
    for _ in range(300):
        opt.zero_grad()
        (net(x) - y).square().mean().backward()
        opt.step()
    return pair_separation(net)


@pytest.mark.parametrize("optimizer_cls,lr", [(torch.optim.SGD, 0.1), (torch.optim.Adam, 0.01)])
def test_symmetric_state_is_kept_without_syre_and_left_with_it(optimizer_cls: type, lr: float) -> None:
    """Duplicated units stay identical (observed: exactly 0 here; bound 1e-12) under plain training, plain weight
    decay, and an anchor with gamma = 0; syre separates them by orders of magnitude more."""
    plain = train_duplicated(optimizer_cls, lr, None)
    decay_only = train_duplicated(optimizer_cls, lr, None, weight_decay=0.01)
    anchor_no_decay = train_duplicated(optimizer_cls, lr, dict(gamma=0.0, sigma0=0.01))
    with_syre = train_duplicated(optimizer_cls, lr, dict(gamma=0.01, sigma0=0.01))
    assert plain <= 1e-12 and decay_only <= 1e-12 and anchor_no_decay <= 1e-12
    assert with_syre > 1e-6
    assert with_syre > 1e4 * max(plain, decay_only, anchor_no_decay, 1e-16)


def test_ridge_regression_lands_on_the_closed_form() -> None:
    """GD on MSE/2 + syre converges to w = (X^T X/n + gamma I)^-1 (X^T y/n + gamma theta0), not to plain ridge."""
    gen = torch.Generator().manual_seed(0)
    n, d, gamma = 200, 6, 0.3
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = x @ torch.randn(d, 1, generator=gen, dtype=torch.float64) + 0.1 * torch.randn(
        n, 1, generator=gen, dtype=torch.float64
    )
    model = nn.Linear(d, 1, bias=False).double()
    syre = Syre(model, gamma=gamma, sigma0=2.0, anchor_scale="absolute", seed=1)
    opt = syre.attach(torch.optim.SGD(model.parameters(), lr=0.2))
    for _ in range(3000):
        opt.zero_grad()
        ((model(x) - y).square().sum() / (2 * n)).backward()
        opt.step()
    theta0 = syre.anchors["weight"].T
    a = x.T @ x / n + gamma * torch.eye(d, dtype=torch.float64)
    closed = torch.linalg.solve(a, x.T @ y / n + gamma * theta0)
    plain_ridge = torch.linalg.solve(a, x.T @ y / n)
    torch.testing.assert_close(model.weight.detach().T, closed, rtol=0, atol=1e-10)
    assert (closed - plain_ridge).abs().max() > 0.05


def test_penalty_gradient_is_the_coupled_term() -> None:
    model = mlp()
    syre = Syre(model, gamma=GAMMA, spread=0.2, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    syre.penalty().backward()
    for name, p in model.named_parameters():
        expected = GAMMA * syre.diagonals[name] * (p.detach() - syre.anchors[name])
        torch.testing.assert_close(p.grad, expected, rtol=1e-12, atol=1e-15)


def test_anchor_scale_and_selection() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(400, 300), nn.ReLU(), nn.Linear(300, 10))
    syre = Syre(model, gamma=0.1, sigma0=0.5, anchor_scale="fan_in", seed=0)
    assert syre.anchors["0.weight"].std().item() == pytest.approx(0.5 / 400**0.5, rel=0.02)
    assert syre.anchors["0.bias"].std().item() == pytest.approx(
        0.5 / 400**0.5, rel=0.2
    )  # bias takes its layer's fan-in
    assert syre.anchors["2.weight"].std().item() == pytest.approx(0.5 / 300**0.5, rel=0.05)
    absolute = Syre(model, gamma=0.1, sigma0=0.5, anchor_scale="absolute", seed=0)
    assert absolute.anchors["0.weight"].std().item() == pytest.approx(0.5, rel=0.02)
    weights_only = Syre(model, gamma=0.1, include="*.weight", exclude="2.*", seed=0)
    assert weights_only.param_names == ["0.weight"]
    spread = Syre(model, gamma=0.1, spread=0.25, seed=0).diagonals["0.weight"]
    assert 0.75 <= spread.min() < 0.76 and 1.24 < spread.max() <= 1.25


def test_given_anchors_are_copied_and_checked() -> None:
    model = mlp()
    target = {n: torch.full_like(p, 0.5) for n, p in model.named_parameters()}
    syre = Syre(model, gamma=0.1, anchors=target, include="0.*")
    assert syre.param_names == ["0.weight", "0.bias"]  # names outside the selection are ignored
    assert torch.equal(syre.anchors["0.weight"], target["0.weight"])
    target["0.weight"].fill_(9.0)
    assert syre.anchors["0.weight"].max() == 0.5  # a copy, not a view of the caller's tensor
    with pytest.raises(ValueError, match="missing: 0.bias"):
        Syre(model, gamma=0.1, anchors={"0.weight": target["0.weight"]}, include="0.*")
    with pytest.raises(ValueError, match="has shape"):
        Syre(model, gamma=0.1, anchors={**target, "0.bias": torch.zeros(3, dtype=torch.float64)})
    with pytest.raises(ValueError, match="anchor_storage"):
        Syre(model, gamma=0.1, anchors=target, anchor_storage="seed")


def test_given_diagonals_weight_the_decay_per_element() -> None:
    """A given D (here: one decay strength per output row, as for the members of a stacked ensemble)."""
    layer = nn.Linear(3, 4).double()
    strength = torch.tensor([0.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    diagonals = {"weight": strength[:, None].expand(4, 3).clone(), "bias": strength.clone()}
    syre = Syre(layer, gamma=0.5, sigma0=1.0, diagonals=diagonals, seed=0)
    opt = syre.attach(torch.optim.SGD(layer.parameters(), lr=0.1))
    before = {n: p.detach().clone() for n, p in layer.named_parameters()}
    for p in layer.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in layer.named_parameters():
        expected = before[name] - 0.1 * 0.5 * diagonals[name] * (before[name] - syre.anchors[name])
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)
    assert torch.equal(layer.weight[0], before["weight"][0])  # strength 0: untouched
    assert syre.summary()["diagonal"] is True
    with pytest.raises(ValueError, match="not both"):
        Syre(layer, gamma=0.5, spread=0.1, diagonals=diagonals)
    with pytest.raises(ValueError, match="non-negative"):
        Syre(layer, gamma=0.5, diagonals={"weight": -diagonals["weight"], "bias": diagonals["bias"]})


def test_init_offset_starts_at_theta_plus_theta0() -> None:
    model = mlp()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    syre = Syre(model, gamma=0.1, seed=4, init_offset=True)
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name] + syre.anchors[name])


def test_decoupled_mode_uses_each_groups_lr_and_detach_restores_the_plain_step() -> None:
    model = mlp()
    syre = Syre(model, gamma=0.5, sigma0=1.0, mode="decoupled", seed=0)
    opt = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": 0.1}, {"params": model[2].parameters(), "lr": 0.01}]
    )
    syre.attach(opt)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero loss gradient: only the pull toward the anchor moves the weights
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    for name, p in model.named_parameters():
        lr = 0.1 if name.startswith("0.") else 0.01
        expected = before[name] - lr * 0.5 * (before[name] - syre.anchors[name])
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)
    syre.detach()
    snapshot = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert all(torch.equal(a, p.detach()) for a, p in zip(snapshot, model.parameters()))
    syre.attach(opt)  # attaching again after detach is allowed


def test_decoupled_mode_follows_the_groups_of_a_loaded_optimizer_state() -> None:
    """``Optimizer.load_state_dict`` replaces the param-group dicts: the decay must read the new lr."""
    model = mlp()
    syre = Syre(model, gamma=0.5, sigma0=1.0, mode="decoupled", seed=0)
    opt = syre.attach(torch.optim.SGD(model.parameters(), lr=0.1))
    saved = opt.state_dict()
    saved["param_groups"][0]["lr"] = 0.01
    opt.load_state_dict(saved)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    for name, p in model.named_parameters():
        expected = before[name] - 0.01 * 0.5 * (before[name] - syre.anchors[name])
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)


def run_steps(model: nn.Module, opt: torch.optim.Optimizer, steps: int, start: int = 0) -> None:
    x, y = regression_data()
    for step in range(start, start + steps):
        batch = slice((step * 8) % 64, (step * 8) % 64 + 8)
        opt.zero_grad()
        (model(x[batch]) - y[batch]).square().mean().backward()
        opt.step()


@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_save_reload_continue_is_bit_identical(tmp_path, mode: str) -> None:
    """Saving mid-run and continuing in a fresh process-like setup gives the very same anchors and weights."""

    def build(seed: int) -> tuple[nn.Module, Syre, torch.optim.Optimizer]:
        model = mlp()
        syre = Syre(model, gamma=GAMMA, sigma0=0.1, spread=0.1, mode=mode, seed=seed)
        return model, syre, syre.attach(torch.optim.Adam(model.parameters(), lr=0.01))

    model, syre, opt = build(seed=11)
    run_steps(model, opt, 40)
    reference = [p.detach().clone() for p in model.parameters()]

    model, syre, opt = build(seed=11)
    run_steps(model, opt, 20)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "syre": syre.state_dict(), "opt": opt.state_dict()}, path)

    restored, restored_syre, restored_opt = build(seed=999)  # other anchors until the state is loaded
    assert not torch.equal(restored_syre.anchors["0.weight"], syre.anchors["0.weight"])
    state = torch.load(path)
    restored.load_state_dict(state["model"])
    restored_syre.load_state_dict(state["syre"])
    restored_opt.load_state_dict(state["opt"])
    for name in syre.param_names:
        assert torch.equal(restored_syre.anchors[name], syre.anchors[name])
        assert torch.equal(restored_syre.diagonals[name], syre.diagonals[name])
    run_steps(restored, restored_opt, 20, start=20)
    assert all(torch.equal(a, p.detach()) for a, p in zip(reference, restored.parameters()))


@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
@pytest.mark.parametrize("spread", [0.0, 0.2])
def test_seed_storage_equals_tensor_storage(mode: str, spread: float) -> None:
    results = {}
    for storage in ("tensor", "seed"):
        model = mlp()
        syre = Syre(model, gamma=GAMMA, sigma0=0.3, spread=spread, mode=mode, anchor_storage=storage, seed=5)
        run_steps(model, syre.attach(torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.0)), 30)
        results[storage] = ([p.detach().clone() for p in model.parameters()], syre)
    (w_tensor, s_tensor), (w_seed, s_seed) = results["tensor"], results["seed"]
    assert all(torch.equal(a, b) for a, b in zip(w_tensor, w_seed))
    assert all(torch.equal(s_tensor.anchors[n], s_seed.anchors[n]) for n in s_tensor.param_names)
    # Seed storage keeps one 0-d int64 tensor (the seed), tensor storage one anchor per parameter.
    assert [(k, v.shape, v.dtype) for k, v in s_seed.state_dict().items()] == [
        ("anchor_seed", torch.Size([]), torch.int64)
    ]
    assert len(s_tensor.state_dict()) == 4 + (4 if spread else 0)


def test_seed_storage_state_round_trip_restores_the_anchors() -> None:
    """With seed storage the state is the seed: loading it into a Syre built with another seed regenerates the
    saved anchors, and the next step uses them."""
    saved = Syre(mlp(), gamma=GAMMA, sigma0=0.3, anchor_storage="seed", seed=5)
    model = mlp()
    other = Syre(model, gamma=GAMMA, sigma0=0.3, anchor_storage="seed", seed=6)
    opt = other.attach(torch.optim.SGD(model.parameters(), lr=0.1))
    assert not torch.equal(other.anchors["0.weight"], saved.anchors["0.weight"])
    other.load_state_dict(saved.state_dict())
    assert other.seed == 5
    assert all(torch.equal(other.anchors[n], saved.anchors[n]) for n in saved.param_names)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    for name, p in model.named_parameters():
        expected = before[name] - 0.1 * GAMMA * (before[name] - saved.anchors[name])
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)


def test_syre_as_submodule_travels_with_the_model() -> None:
    """As a submodule the anchors are in the model's state_dict (tensors only), and .to() converts them too."""
    model = mlp(dtype=torch.float32)
    model.syre = Syre(list(model.named_parameters()), gamma=0.1, seed=0)
    assert list(model.parameters()).__len__() == 4  # syre registers no parameters
    state = model.state_dict()
    assert "syre.theta0/0/weight" in state
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert {k for k in state if k.startswith("syre.")} == {
        f"syre.theta0/{n.replace('.', '/')}" for n, _ in mlp().named_parameters()
    }
    model.double()
    assert model.syre.anchors["0.weight"].dtype == torch.float64


def test_load_state_dict_follows_torchs_strict_contract() -> None:
    """Missing and unexpected keys: RuntimeError when strict, listed in the result otherwise (the present entries
    still load); a shape mismatch fails in both modes and leaves every anchor as it was."""
    source = Syre(nn.Linear(4, 2), gamma=0.1, seed=0)
    target = Syre(nn.Linear(4, 2), gamma=0.1, seed=1)
    original = {n: t.clone() for n, t in target.anchors.items()}
    partial = {"theta0/weight": source.state_dict()["theta0/weight"], "theta0/extra": torch.zeros(3)}
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*theta0/bias") as info:
        target.load_state_dict(partial)
    assert 'Unexpected key(s) in state_dict: "theta0/extra"' in str(info.value)
    result = target.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["theta0/bias"] and result.unexpected_keys == ["theta0/extra"]
    assert torch.equal(target.anchors["weight"], source.anchors["weight"])
    assert torch.equal(target.anchors["bias"], original["bias"])

    small = Syre(nn.Linear(3, 2), gamma=0.1, seed=2)
    before = {n: t.clone() for n, t in target.anchors.items()}
    for strict in (True, False):
        with pytest.raises(RuntimeError, match="size mismatch for theta0/weight"):
            target.load_state_dict(small.state_dict(), strict=strict)
        assert all(
            torch.equal(before[n], target.anchors[n]) for n in before
        )  # bias shapes agree: untouched too

    # Other settings that change the state's layout show up as missing/unexpected keys, the torch way.
    with pytest.raises(RuntimeError, match="Unexpected key.*D/weight"):
        target.load_state_dict(Syre(nn.Linear(4, 2), gamma=0.1, spread=0.1, seed=0).state_dict())
    with pytest.raises(RuntimeError, match="Unexpected key.*anchor_seed"):
        target.load_state_dict(Syre(nn.Linear(4, 2), gamma=0.1, anchor_storage="seed", seed=0).state_dict())


def test_a_copy_is_detached_and_keeps_its_anchors() -> None:
    """torch's optimizers do not copy step hooks, so a deep copy (or pickle) of a Syre is detached: attached to a
    new optimizer it decays the copy's own weights toward the same anchors, and the original still works."""
    model = mlp()
    model.syre = Syre(model[0], gamma=0.5, sigma0=1.0, seed=0)
    opt = model.syre.attach(torch.optim.SGD(model[0].parameters(), lr=0.1))
    twin = copy.deepcopy(model)
    assert twin.syre._optimizer is None and not twin.syre._handles
    assert all(torch.equal(twin.syre.anchors[n], a) for n, a in model.syre.anchors.items())
    twin_opt = twin.syre.attach(torch.optim.SGD(twin[0].parameters(), lr=0.1))
    for m, o in ((model, opt), (twin, twin_opt)):
        for p in m.parameters():
            p.grad = torch.zeros_like(p)
        before = m[0].weight.detach().clone()
        o.step()
        expected = before - 0.1 * 0.5 * (before - m.syre.anchors["weight"])
        torch.testing.assert_close(m[0].weight.detach(), expected, rtol=0, atol=1e-15)
    restored = pickle.loads(pickle.dumps(model))
    assert torch.equal(restored.syre.anchors["weight"], model.syre.anchors["weight"])


def test_zero_gamma_leaves_the_step_untouched() -> None:
    """gamma = 0 is the plain optimizer, bit for bit (the hook returns at once)."""
    weights = []
    for gamma in (None, 0.0):
        model = mlp()
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        if gamma is not None:
            Syre(model, gamma=gamma, sigma0=1.0, seed=0).attach(opt)
        run_steps(model, opt, 10)
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(gamma=-1.0), "gamma"),
        (dict(gamma=float("nan")), "gamma"),
        (dict(gamma=float("inf")), "gamma"),
        (dict(gamma=0.1, sigma0=-0.1), "sigma0"),
        (dict(gamma=0.1, sigma0=float("nan")), "sigma0"),
        (dict(gamma=0.1, spread=1.0), "spread"),
        (dict(gamma=0.1, spread=-0.1), "spread"),
        (dict(gamma=0.1, mode="sideways"), "mode"),
        (dict(gamma=0.1, anchor_scale="fan_out"), "anchor_scale"),
        (dict(gamma=0.1, anchor_storage="disk"), "anchor_storage"),
        (dict(gamma=0.1, include="nothing.*"), "selected no"),
        (dict(gamma=0.1, exclude="*"), "selected no"),
        (dict(gamma=0.1, seed=-3), "seed"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Syre(mlp(), **kwargs)


def test_attach_errors() -> None:
    model, other = mlp(), mlp(1)
    syre = Syre(model, gamma=0.1)
    with pytest.raises(ValueError, match="does not hold"):
        syre.attach(torch.optim.SGD(other.parameters(), lr=0.1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    syre.attach(opt)
    with pytest.raises(ValueError, match="already attached"):
        syre.attach(opt)
    with pytest.raises(ValueError, match="attached twice"):
        Syre(model, gamma=0.1).attach(opt)


def test_import_core_loads_only_torch_and_the_standard_library() -> None:
    code = (
        "import sys, torch; before = set(sys.modules); import syre_rl.core, syre_rl.plasticity, syre_rl; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(new - set(sys.stdlib_module_names) - {'syre_rl'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"
