"""The GPU path, marked ``cuda``: run by ``scripts/bench/gpu_check.py`` on a CUDA machine, skipped where there is none.

With ``SYRE_RL_CUDA_TESTS_ON_CPU=1`` (``gpu_check.py --dry-run``) the same tests run on the CPU, which checks
the tests themselves; only a CUDA device checks the GPU path. Data: MNIST from ``$SYRE_RL_DATA`` (or
``../shared/data``); the tests that need it are skipped when it is missing.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import os

import numpy as np
import pytest
import torch
from torch import nn

from syre_rl.core import Syre
from syre_rl.presets import PROJECT_ROOT, load_preset
from syre_rl.supervised.data import (
    DataError,
    default_data_dir,
    epoch_batches,
    epoch_order,
    load_dataset,
    pixel_permutations,
)
from syre_rl.supervised.ensemble import member_decay, member_generators
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.models import MLP
from syre_rl.supervised.step import GraphedStep
from syre_rl.supervised.train import train

pytestmark = pytest.mark.cuda

ON_CPU = os.environ.get("SYRE_RL_CUDA_TESTS_ON_CPU") == "1"


@pytest.fixture
def device() -> torch.device:
    if ON_CPU:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (scripts/bench/gpu_check.py runs these on one)")
    return torch.device("cuda")


@pytest.fixture
def mnist_dir():
    root = default_data_dir()
    if not (root / "MNIST" / "raw").is_dir():
        pytest.skip(f"needs MNIST in {root / 'MNIST' / 'raw'} (set SYRE_RL_DATA)")
    return root


def _mlp(device: torch.device, seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2)).to(
        device, dtype
    )


class Holder(nn.Module):
    """A model with its Syre as a submodule (so its state_dict carries the anchors)."""

    def __init__(self, body: nn.Module, **syre_kwargs) -> None:
        super().__init__()
        self.body = body
        self.syre = Syre(body, **syre_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _batch(device: torch.device, dtype: torch.dtype = torch.float64, n: int = 64):
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 6, generator=gen, dtype=dtype), torch.randn(n, 2, generator=gen, dtype=dtype)
    return x.to(device), y.to(device)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, device, steps: int, extra=None) -> None:
    x, y = _batch(device, next(model.parameters()).dtype)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = (model(x) - y).square().mean()
        if extra is not None:
            loss = loss + extra()
        loss.backward()
        optimizer.step()


# ------------------------------------------------------------------------------------------ data
def test_data_lives_on_the_device_and_batches_are_drawn_there(device, mnist_dir):
    try:
        data = load_dataset("mnist", mnist_dir, train=True, device=device).subset(1000)
    except DataError as err:
        pytest.skip(str(err))
    cpu = load_dataset("mnist", mnist_dir, train=True, device="cpu").subset(1000)
    assert data.x.device.type == device.type and data.y.device.type == device.type
    order = epoch_order(len(data), [0, 1, 2], epoch=0, device=device)
    assert order.device.type == device.type and order.shape == (3, 1000)
    assert all(torch.equal(row.sort().values.cpu(), torch.arange(1000)) for row in order)  # permutations
    perms = pixel_permutations(3, 784, seed=0, device=device)
    batch = next(epoch_batches(order, 64))
    x = data.x.flatten(1)[batch][..., perms[1]]  # one gather, one permutation: still on the device
    assert x.device.type == device.type and x.shape == (3, 64, 784)
    expected = cpu.x.flatten(1)[batch.cpu()][..., perms[1].cpu()]
    # The standardisation's mean and std are reductions over 47M values: device and CPU round them differently.
    torch.testing.assert_close(x.cpu(), expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------- ensembles
def test_stacked_members_on_the_device_train_like_the_cpu_reference(device):
    """Three stacked members with per-member decay, trained on the device, equal the same run on the CPU
    (float64: to round-off)."""
    runs = {}
    for dev in (torch.device("cpu"), device):
        torch.manual_seed(0)
        model = MLP(6, [16, 16], 2, member_generators([0, 1, 2])).to(dev, torch.float64)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        member_decay(model, [0.0, 1e-2, 1e-2], [0.0, 0.0, 0.5], seeds=[0, 1, 2]).attach(optimizer)
        x, y = _batch(dev)
        for _ in range(20):
            optimizer.zero_grad(set_to_none=True)
            ((model(x.expand(3, *x.shape)) - y).square().mean(dim=(1, 2))).sum().backward()
            optimizer.step()
        runs[dev.type] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        with torch.no_grad():  # each member alone is the stacked model's slice
            member = model.member(1)
            torch.testing.assert_close(member(x), model(x.expand(3, *x.shape))[1], rtol=1e-12, atol=1e-12)
    for name, value in runs["cpu"].items():
        torch.testing.assert_close(runs[device.type][name], value, rtol=1e-10, atol=1e-12)


# -------------------------------------------------------------------------------------- syre core
@pytest.mark.parametrize("storage", ["tensor", "seed"])
@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_syre_on_device_tensors_is_the_formula(device, mode, storage):
    """On the device, in both modes and storages: coupled = SGD on the loss plus the penalty; decoupled = SGD
    after a pull toward the anchor by lr*gamma; seed storage = tensor storage bit for bit."""
    gamma, lr = 0.1, 0.05
    model = _mlp(device)
    syre = Syre(model, gamma=gamma, sigma0=0.5, spread=0.2, mode=mode, anchor_storage=storage, seed=7)
    assert all(a.device.type == device.type for a in syre.anchors.values())
    optimizer = syre.attach(torch.optim.SGD(model.parameters(), lr=lr))
    reference = copy.deepcopy(model)
    # The same anchors, in tensor storage.
    ref_syre = Syre(reference, gamma=gamma, sigma0=0.5, spread=0.2, seed=7)
    assert all(torch.equal(a, ref_syre.anchors[n]) for n, a in syre.anchors.items())
    ref_opt = torch.optim.SGD(reference.parameters(), lr=lr)
    for _ in range(5):
        _train(model, optimizer, device, 1)
        if mode == "coupled":
            _train(reference, ref_opt, device, 1, extra=ref_syre.penalty)
            continue
        x, y = _batch(device)
        ref_opt.zero_grad(set_to_none=True)
        (reference(x) - y).square().mean().backward()  # the gradient at w, before the pull
        with torch.no_grad():
            for name, p in reference.named_parameters():
                p.sub_(lr * gamma * ref_syre.diagonals[name] * (p - ref_syre.anchors[name]))
        ref_opt.step()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14, msg=name)
    # The other storage gives the very same weights.
    other = _mlp(device)
    twin = Syre(other, gamma=gamma, sigma0=0.5, spread=0.2, mode=mode, seed=7,
                anchor_storage="seed" if storage == "tensor" else "tensor")  # fmt: skip
    _train(other, twin.attach(torch.optim.SGD(other.parameters(), lr=lr)), device, 5)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), other.parameters()))


def test_save_reload_on_the_device_and_across_cpu_and_device(device):
    """Syre as a submodule: state_dict round trips on the device and to/from the CPU, bit for bit; training
    continues identically after a reload."""
    model = Holder(_mlp(device, dtype=torch.float32), gamma=0.05, sigma0=0.5, spread=0.1, seed=3)
    optimizer = model.syre.attach(torch.optim.Adam(model.parameters(), lr=1e-2))
    _train(model, optimizer, device, 3)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": optimizer.state_dict()}, buffer)

    def reloaded(dev: torch.device):
        buffer.seek(0)
        state = torch.load(buffer, map_location=dev, weights_only=True)
        # Other weights and anchors until loaded.
        twin = Holder(_mlp(dev, seed=99, dtype=torch.float32), gamma=0.05, sigma0=0.5, spread=0.1, seed=11)
        twin.load_state_dict(state["model"])
        opt = twin.syre.attach(torch.optim.Adam(twin.parameters(), lr=1e-2))
        opt.load_state_dict(state["opt"])
        return twin, opt

    on_device, opt_device = reloaded(device)
    on_cpu, opt_cpu = reloaded(torch.device("cpu"))
    for name, anchor in model.syre.anchors.items():
        assert torch.equal(on_device.syre.anchors[name], anchor)
        assert torch.equal(on_cpu.syre.anchors[name], anchor.cpu())
    _train(model, optimizer, device, 4)
    _train(on_device, opt_device, device, 4)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), on_device.parameters()))
    # Moving the whole model (anchors included) to the device and training on gives the device run.
    on_cpu.to(device)
    for state in opt_cpu.state.values():
        for key, value in state.items():
            if torch.is_tensor(value) and key != "step":
                state[key] = value.to(device)
    _train(on_cpu, opt_cpu, device, 4)
    for p, q in zip(model.parameters(), on_cpu.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------- fused Adam
@pytest.mark.parametrize(
    "cls,mode", [(torch.optim.Adam, "coupled"), (torch.optim.AdamW, "decoupled")], ids=["adam", "adamw"]
)
def test_fused_optimizer_with_syre_hooks(device, cls, mode):
    """Fused Adam/AdamW with syre's hooks: with a zero anchor it is the optimizer's own weight decay, and with a
    random anchor it equals the foreach implementation (both to round-off)."""
    gamma, lr = 0.05, 1e-2
    runs = {}
    for name, impl, zero in [("own", {"fused": True}, None), ("zero", {"fused": True}, True),
                             ("fused", {"fused": True}, False), ("foreach", {"foreach": True}, False)]:  # fmt: skip
        model = _mlp(device, dtype=torch.float32)
        if zero is None:
            optimizer = cls(model.parameters(), lr=lr, weight_decay=gamma, **impl)
        else:
            optimizer = cls(model.parameters(), lr=lr, weight_decay=0.0, **impl)
            anchors = {n: torch.zeros_like(p) for n, p in model.named_parameters()} if zero else None
            Syre(model, gamma=gamma, sigma0=0.5, mode=mode, seed=5, anchors=anchors).attach(optimizer)
        _train(model, optimizer, device, 10)
        runs[name] = [p.detach().clone() for p in model.parameters()]
    for a, b in zip(runs["own"], runs["zero"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(runs["fused"], runs["foreach"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not all(torch.allclose(a, b) for a, b in zip(runs["own"], runs["fused"]))  # the anchor matters


# ---------------------------------------------------------------------------------- graphed step
def test_graphed_step_equals_the_eager_step_on_the_device(device, mnist_dir, tmp_path):
    """A permuted-MNIST run with every training step replayed from a CUDA graph ends where the eager run ends
    (round-off: the capturable Adam computes its bias correction on the device)."""
    experiment = EXPERIMENTS["permuted-mnist"]
    cfg = load_preset(PROJECT_ROOT / "experiments" / "permuted-mnist.yaml", "tiny", experiment.schema)
    cfg = dataclasses.replace(cfg, tasks=2, train_size=300, test_size=64, eval_size=64, amp=False)
    graphs = []
    capture = GraphedStep._capture

    def recording(self, batch):
        capture(self, batch)
        graphs.append(type(self.graph).__name__)

    GraphedStep._capture = recording
    try:
        graphed = train(
            experiment, cfg, run_dir=tmp_path / "g", device=device, step="graph", log=lambda s: None
        )
    finally:
        GraphedStep._capture = capture
    eager = train(experiment, cfg, run_dir=tmp_path / "e", device=device, log=lambda s: None)
    assert graphs == (["_EagerGraph"] if device.type == "cpu" else ["CUDAGraph"]) * 2  # one capture per stage
    weights = {k: torch.load(tmp_path / k / "checkpoint.pt", weights_only=True)["model"] for k in ("g", "e")}
    for name, value in weights["e"].items():
        torch.testing.assert_close(weights["g"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(eager["history"], graphed["history"], strict=True):
        np.testing.assert_allclose(a["metrics"]["train/loss"], b["metrics"]["train/loss"], rtol=1e-4)


# ------------------------------------------------------------------------------------- SB3 policy
def test_sb3_policy_trains_saves_and_loads_on_the_device(device, tmp_path):
    sb3 = pytest.importorskip("stable_baselines3")
    pytest.importorskip("sb3_contrib")
    from syre_rl.policies import SyreActorCriticPolicy  # noqa: PLC0415  (SB3 is optional on GPU machines)

    model = sb3.PPO(
        SyreActorCriticPolicy,
        "Pendulum-v1",
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        seed=0,
        device=device,
        policy_kwargs={"net_arch": [32, 32], "syre_kwargs": {"gamma": 0.05, "sigma0": 0.5}},
    )
    before = {n: a.clone() for n, a in model.policy.syre.anchors.items()}
    weights = {n: p.detach().clone() for n, p in model.policy.named_parameters()}
    model.learn(128)
    policy = model.policy
    assert all(a.device.type == device.type for a in policy.syre.anchors.values())
    assert all(torch.equal(a, before[n]) for n, a in policy.syre.anchors.items())  # anchors stay fixed
    assert any(not torch.equal(p, weights[n]) for n, p in policy.named_parameters())  # it trained
    model.save(tmp_path / "ppo.zip")
    loaded = sb3.PPO.load(tmp_path / "ppo.zip", device=device)
    assert all(torch.equal(loaded.policy.syre.anchors[n], a) for n, a in policy.syre.anchors.items())
    obs = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
