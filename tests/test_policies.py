"""The syre policies inside real SB3 / sb3-contrib training loops on PyBullet, and their save/load round trip."""

from __future__ import annotations

import copy
import io
import math
from typing import Any

import numpy as np
import pytest
import torch
from sb3_contrib import TRPO, MaskablePPO, RecurrentPPO
from sb3_contrib.common.envs import InvalidActionEnvDiscrete
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.logger import KVWriter, Logger

import syre_rl
from syre_rl.envs import make_vec_env
from syre_rl.policies import (
    SyreActorCriticCnnPolicy,
    SyreActorCriticPolicy,
    SyreMaskableActorCriticPolicy,
    SyreMultiInputActorCriticPolicy,
    SyreRecurrentActorCriticPolicy,
    SyreSACPolicy,
    SyreTD3Policy,
)

ENV = "InvertedPendulumBulletEnv-v0"
SYRE = {"gamma": 0.05, "sigma0": 0.5, "spread": 0.0, "mode": "coupled"}
SMALL = {"net_arch": [16, 16], "syre_kwargs": SYRE}


class Capture(KVWriter):
    """Keeps every logged row, so tests can read the losses SB3 reports."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, key_values: dict[str, Any], key_excluded: Any, step: int = 0) -> None:
        self.rows.append(dict(key_values))


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if torch.is_tensor(v)}


def anchors(policy: Any) -> dict[str, torch.Tensor]:
    return {
        f"{owner}:{name}": a.clone()
        for owner, s in policy.syre_modules.items()
        for name, a in s.anchors.items()
    }


# (algorithm, policy, env factory, kwargs, steps, loss keys SB3 logs)
LEARNERS = [
    (PPO, SyreActorCriticPolicy, dict(n_steps=128, batch_size=64, n_epochs=2), 512, ["train/loss"]),
    (A2C, SyreActorCriticPolicy, dict(n_steps=16), 512, ["train/policy_loss", "train/value_loss"]),
    (
        TRPO,
        SyreActorCriticPolicy,
        dict(n_steps=256, batch_size=128, n_critic_updates=2),
        512,
        ["train/value_loss"],
    ),
    (
        RecurrentPPO,
        SyreRecurrentActorCriticPolicy,
        dict(n_steps=128, batch_size=64, n_epochs=1, policy_kwargs=dict(lstm_hidden_size=16)),
        512,
        ["train/loss"],
    ),
    (
        SAC,
        SyreSACPolicy,
        dict(learning_starts=100, batch_size=64),
        400,
        ["train/actor_loss", "train/critic_loss"],
    ),
    (
        TD3,
        SyreTD3Policy,
        dict(learning_starts=100, batch_size=64),
        400,
        ["train/actor_loss", "train/critic_loss"],
    ),
]


@pytest.mark.parametrize(
    ("algo", "policy", "kwargs", "steps", "loss_keys"), LEARNERS, ids=lambda x: getattr(x, "__name__", None)
)
def test_learns_on_pybullet_with_fixed_anchors(algo, policy, kwargs, steps, loss_keys):
    kwargs = copy.deepcopy(kwargs)
    policy_kwargs = {**SMALL, **kwargs.pop("policy_kwargs", {})}
    model = algo(
        policy,
        make_vec_env(ENV, 2 if algo in (PPO, A2C) else 1, seed=0),
        policy_kwargs=policy_kwargs,
        seed=0,
        device="cpu",
        **kwargs,
    )
    capture = Capture()
    model.set_logger(Logger(None, [capture]))
    before, anchors_before = snapshot(model.policy), anchors(model.policy)
    owners = model.policy.syre_modules
    assert set(owners) == ({"actor", "critic"} if algo in (SAC, TD3) else {""})
    for (
        path,
        syre,
    ) in owners.items():  # every parameter its optimizer trains is anchored, except SB3's log_std
        owner = model.policy.get_submodule(path)
        held = sum(p.numel() for g in owner.optimizer.param_groups for p in g["params"])
        log_std = getattr(owner, "log_std", None)
        excluded = log_std.numel() if isinstance(log_std, torch.nn.Parameter) else 0
        assert syre.summary()["numel"] == held - excluded and "log_std" not in syre.param_names
        assert syre.summary()["gamma"] == SYRE["gamma"]

    model.learn(steps, log_interval=1)

    losses = [row[k] for row in capture.rows for k in loss_keys if k in row]
    assert losses and all(math.isfinite(v) for v in losses)
    after = snapshot(model.policy)
    changed = [k for k in before if "syre" not in k and not torch.equal(before[k], after[k])]
    assert changed, "training changed no weight"
    assert all(torch.equal(anchors_before[k], v) for k, v in anchors(model.policy).items())


def test_maskable_cnn_and_multi_input_policies_train():
    """The policies for discrete masked actions, images and dict observations (sb3's own test envs)."""
    cases = [
        (
            MaskablePPO,
            SyreMaskableActorCriticPolicy,
            InvalidActionEnvDiscrete(dim=10, n_invalid_actions=3),
            "mlp_",
        ),
        (
            PPO,
            SyreActorCriticCnnPolicy,
            FakeImageEnv(screen_height=36, screen_width=36),
            "features_extractor.cnn",
        ),
        (
            PPO,
            SyreMultiInputActorCriticPolicy,
            SimpleMultiObsEnv(random_start=False),
            "features_extractor.extractors",
        ),
    ]
    for algo, policy, env, expected_prefix in cases:
        model = algo(
            policy, env, n_steps=32, batch_size=32, n_epochs=1, seed=0, policy_kwargs={"syre_kwargs": SYRE}
        )
        before = anchors(model.policy)
        assert any(name.startswith(f":{expected_prefix}") for name in before)
        model.learn(64)
        assert all(torch.equal(before[k], v) for k, v in anchors(model.policy).items())


def test_exported_lazily_from_package():
    assert syre_rl.SyreActorCriticPolicy is SyreActorCriticPolicy
    assert syre_rl.SyreTD3Policy is SyreTD3Policy


@pytest.mark.parametrize(
    ("mode", "spread", "optimizer"),
    [("coupled", 0.0, "sgd"), ("coupled", 0.2, "sgd"), ("decoupled", 0.0, "adam")],
)
def test_anchor_pull_is_exact_with_zero_loss_gradient(mode, spread, optimizer):
    """With zero gradients the only update is syre's: w <- w - lr * gamma * D * (w - theta0)."""
    lr, gamma = 0.1, 0.5
    opt_class = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    model = PPO(
        SyreActorCriticPolicy,
        make_vec_env(ENV, 1, seed=0),
        learning_rate=lr,
        seed=0,
        device="cpu",
        policy_kwargs=dict(
            net_arch=[8],
            optimizer_class=opt_class,
            optimizer_kwargs={},
            syre_kwargs=dict(gamma=gamma, sigma0=1.0, spread=spread, mode=mode),
        ),
    )
    policy, syre = model.policy, model.policy.syre
    params = dict(policy.named_parameters())
    before = {n: params[n].detach().double().clone() for n in syre.param_names}
    diag = syre.diagonals or {n: torch.ones_like(p) for n, p in before.items()}
    for p in policy.parameters():
        p.grad = torch.zeros_like(p)
    policy.optimizer.step()
    for name, w in before.items():
        expected = w - lr * gamma * diag[name].double() * (w - syre.anchors[name].double())
        torch.testing.assert_close(params[name].detach().double(), expected, rtol=0, atol=1e-6)
        assert not torch.equal(params[name].detach().double(), w)  # it really moved


def test_save_load_round_trip_ppo_is_exact(tmp_path):
    env = make_vec_env(ENV, 2, seed=0)
    model = PPO(
        SyreActorCriticPolicy,
        env,
        n_steps=128,
        batch_size=64,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs=SMALL,
    )
    model.learn(256)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", env=env, device="cpu")

    assert anchors(loaded.policy).keys() == anchors(model.policy).keys()
    assert all(torch.equal(a, anchors(loaded.policy)[k]) for k, a in anchors(model.policy).items())
    assert loaded.policy.syre.summary() == model.policy.syre.summary()
    obs = np.random.default_rng(0).normal(size=(32, *env.observation_space.shape)).astype(np.float32)
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )

    # The policy alone round-trips too (SB3's policy.save keeps syre_kwargs in the constructor parameters).
    model.policy.save(tmp_path / "policy.pth")
    alone = SyreActorCriticPolicy.load(tmp_path / "policy.pth")
    assert all(torch.equal(a, anchors(alone)[k]) for k, a in anchors(model.policy).items())

    # Continued training is identical: the same rollout and RNG give the same update (optimizer state,
    # learning-rate progress and the syre hook all survive the round trip).
    loaded.rollout_buffer = copy.deepcopy(model.rollout_buffer)
    loaded.set_logger(Logger(None, []))
    for m in (model, loaded):
        torch.manual_seed(1)
        np.random.seed(1)
        m.train()
    a, b = snapshot(model.policy), snapshot(loaded.policy)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_save_load_round_trip_sac_is_exact():
    env = make_vec_env(ENV, 1, seed=0)
    model = SAC(
        SyreSACPolicy, env, learning_starts=50, batch_size=32, seed=0, device="cpu", policy_kwargs=SMALL
    )
    model.learn(150)
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    loaded = SAC.load(buffer, env=env, device="cpu")
    assert all(torch.equal(a, anchors(loaded.policy)[k]) for k, a in anchors(model.policy).items())
    loaded.replay_buffer = copy.deepcopy(model.replay_buffer)
    loaded.set_logger(Logger(None, []))
    for m in (model, loaded):
        torch.manual_seed(2)
        np.random.seed(2)
        m.train(gradient_steps=5, batch_size=32)
    a, b = snapshot(model.policy), snapshot(loaded.policy)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_decoupled_pull_after_load_uses_the_current_learning_rate(tmp_path):
    """SB3 changes the lr in the optimizer's param_groups, which load_state_dict replaces: syre must follow."""
    model = PPO(
        SyreActorCriticPolicy,
        make_vec_env(ENV, 1, seed=0),
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[8], syre_kwargs=dict(gamma=0.5, sigma0=1.0, mode="decoupled")),
    )
    model.save(tmp_path / "m.zip")
    policy = PPO.load(tmp_path / "m.zip", device="cpu").policy
    for group in policy.optimizer.param_groups:
        group["lr"] = 0.2
    w = policy.action_net.weight.detach().clone()
    for p in policy.parameters():
        p.grad = torch.zeros_like(p)
    policy.optimizer.step()
    expected = w.lerp(policy.syre.anchors["action_net.weight"], 0.2 * 0.5)
    torch.testing.assert_close(policy.action_net.weight.detach(), expected, rtol=0, atol=1e-6)
