"""The syre policies keep SB3's contracts: every alias has a twin reachable by name, state dicts hold tensors only,
load_state_dict behaves like torch's, actor/critic/target round trips work, copies keep syre, warm starts work both
ways, the global random stream is untouched, and every method treats PPO's log_std by one rule."""

from __future__ import annotations

import copy
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import QRDQN, TQC, MaskablePPO
from stable_baselines3 import DQN, PPO, SAC, TD3
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv

from syre_rl.core import Syre
from syre_rl.policies import (
    PlasticityActorCriticPolicy,
    SyreActorCriticPolicy,
    SyreMixin,
    SyreSACPolicy,
)
from syre_rl.policies.catalog import ALGORITHMS, SYRE_TWINS


def tiny() -> dict:
    """Small networks (a fresh dict each time: SB3's off-policy algorithms write into policy_kwargs)."""
    return {"net_arch": [8]}


DISCRETE_ONLY = (DQN, QRDQN, MaskablePPO)
CONTINUOUS_ONLY = {"SAC", "TD3", "DDPG", "TQC", "CrossQ"}


def env_for(algo: type, alias: str) -> gym.Env:
    discrete = algo in DISCRETE_ONLY
    if "Cnn" in alias:
        return FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=discrete)
    if "MultiInput" in alias:
        return SimpleMultiObsEnv(random_start=False, discrete_actions=discrete)
    return gym.make("CartPole-v1" if discrete else "Pendulum-v1")


def build(algo: type, policy: str | type, env: gym.Env, seed: int = 0, **kwargs) -> object:
    extra = (
        {"buffer_size": 200, "learning_starts": 20}
        if algo.__name__ in CONTINUOUS_ONLY | {"DQN", "QRDQN"}
        else {}
    )
    if "policy_kwargs" not in kwargs:
        kwargs["policy_kwargs"] = tiny()
    if "Cnn" in str(policy):
        kwargs["policy_kwargs"]["features_extractor_kwargs"] = {"features_dim": 8}
    return algo(policy, env, seed=seed, device="cpu", **extra, **kwargs)


CASES = [
    (algo, alias) for algo in ALGORITHMS for alias in algo.policy_aliases if not alias.startswith("Syre")
]


@pytest.mark.parametrize(("algo", "alias"), CASES, ids=[f"{a.__name__}-{p}" for a, p in CASES])
def test_every_alias_has_a_twin_that_keeps_sb3s_contracts(algo: type, alias: str) -> None:
    """Each algorithm's alias has a Syre twin under ``"Syre" + alias``; building it draws nothing from torch's
    global generator; the policy's state dict holds tensors only; SB3's own networks carry no syre entries; every
    optimizer the policy owns has its own attached Syre."""
    twin = algo.policy_aliases["Syre" + alias]
    assert twin is SYRE_TWINS[algo.policy_aliases[alias]] and issubclass(twin, SyreMixin)
    env = env_for(algo, alias)
    plain = build(algo, alias, env)
    after_plain = torch.get_rng_state()
    model = build(algo, "Syre" + alias, env)
    assert torch.equal(torch.get_rng_state(), after_plain)  # the anchors came from their own generators
    policy = model.policy
    assert type(policy) is twin
    assert all(torch.equal(a, b) for a, b in zip(plain.policy.parameters(), policy.parameters()))

    state = policy.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    owners = {
        path: module
        for path, module in policy.named_modules()
        if isinstance(getattr(module, "optimizer", None), torch.optim.Optimizer)
    }
    assert set(policy.syre_modules) == set(owners) and owners
    for path, syre in policy.syre_modules.items():
        optimizer = owners[path].optimizer
        assert syre._optimizer() is optimizer and len(optimizer._optimizer_step_pre_hooks) == 1
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        assert {id(p) for p in syre._params} <= held
    for name, child in policy.named_children():
        if not isinstance(child, Syre):
            assert not any("syre" in key for key in child.state_dict()), name


def test_string_names_are_registered_on_import_of_syre_rl_in_either_order() -> None:
    code = (
        "import {first}; import {second}\n"
        "from stable_baselines3 import PPO, SAC\n"
        "from sb3_contrib import RecurrentPPO\n"
        "m = PPO('SyreMlpPolicy', 'CartPole-v1', n_steps=16, batch_size=16, device='cpu')\n"
        "print(type(m.policy).__name__, SAC.policy_aliases['SyreMultiInputPolicy'].__name__,"
        " RecurrentPPO.policy_aliases['SyreCnnLstmPolicy'].__name__)\n"
    )
    for first, second in (("syre_rl", "stable_baselines3"), ("sb3_contrib", "syre_rl")):
        out = subprocess.run(
            [sys.executable, "-c", code.format(first=first, second=second)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert out == [
            "SyreActorCriticPolicy",
            "SyreSACMultiInputPolicy",
            "SyreRecurrentActorCriticCnnPolicy",
        ]


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


@pytest.mark.parametrize("algo", [PPO, SAC])
def test_gamma_zero_reproduces_the_plain_run_bit_for_bit(algo: type) -> None:
    """The anchors come from their own generators and gamma = 0 adds nothing to a step: the syre policy's run is
    the plain policy's run, weights and rollouts identical."""
    runs = []
    for policy in ("MlpPolicy", "SyreMlpPolicy"):
        kwargs = tiny()
        if policy.startswith("Syre"):
            kwargs["syre_kwargs"] = {"gamma": 0.0, "sigma0": 1.0}
        extra = dict(n_steps=64, batch_size=32, n_epochs=2) if algo is PPO else dict(learning_starts=40)
        model = algo(policy, "Pendulum-v1", policy_kwargs=kwargs, seed=3, device="cpu", **extra)
        model.learn(160)
        buffer = model.rollout_buffer.observations if algo is PPO else model.replay_buffer.observations
        runs.append((params(model.policy), buffer.copy()))
    (w_plain, obs_plain), (w_syre, obs_syre) = runs
    assert all(torch.equal(a, b) for a, b in zip(w_plain, w_syre))
    np.testing.assert_array_equal(obs_plain, obs_syre)
    # ... and with gamma > 0 the same run does differ (the comparison is not vacuous).
    model = algo("SyreMlpPolicy", "Pendulum-v1", policy_kwargs=tiny(), seed=3, device="cpu", **extra)
    model.learn(160)
    assert not all(torch.equal(a, b) for a, b in zip(w_plain, params(model.policy)))


def zero_grad_step(optimizer: torch.optim.Optimizer) -> None:
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.zeros_like(p)
    optimizer.step()


@pytest.mark.parametrize("policy_class", [SyreActorCriticPolicy, SyreSACPolicy])
def test_deepcopy_keeps_syre_on_the_copys_own_optimizer(policy_class: type) -> None:
    """torch's optimizers drop step hooks when copied: the copied policy attaches its Syre to its own optimizer,
    the copy's step pulls the copy's weights, and the original's weights do not move."""
    algo = PPO if policy_class is SyreActorCriticPolicy else SAC
    model = algo(
        policy_class,
        "Pendulum-v1",
        policy_kwargs=dict(tiny(), syre_kwargs={"gamma": 0.5, "sigma0": 1.0, "mode": "decoupled"}),
        learning_rate=0.1,
        device="cpu",
    )
    original = model.policy
    twin = copy.deepcopy(original)
    for path, syre in twin.syre_modules.items():
        owner, original_owner = twin.get_submodule(path), original.get_submodule(path)
        assert syre._optimizer() is owner.optimizer and owner.optimizer is not original_owner.optimizer
        assert all(
            p is q
            for p, q in zip(syre._params, [p for n, p in owner.named_parameters() if n in syre.param_names])
        )
        untouched = params(original)
        name = syre.param_names[0]
        weight = dict(owner.named_parameters())[name]
        before = weight.detach().clone()
        zero_grad_step(owner.optimizer)
        expected = before.lerp(syre.anchors[name], 0.1 * 0.5)
        torch.testing.assert_close(weight.detach(), expected, rtol=0, atol=1e-6)
        assert all(torch.equal(a, b) for a, b in zip(untouched, params(original)))
    # The original still decays on its own optimizer.
    for path, syre in original.syre_modules.items():
        assert syre._optimizer() is original.get_submodule(path).optimizer


def test_plasticity_policies_refuse_to_be_copied() -> None:
    model = PPO(PlasticityActorCriticPolicy, "Pendulum-v1", policy_kwargs=dict(plasticity_method="l2"))
    with pytest.raises(TypeError, match="cannot be copied"):
        copy.deepcopy(model.policy)


@pytest.mark.parametrize("algo", [SAC, TD3, TQC])
def test_actor_critic_and_target_round_trips_sb3_performs(tmp_path, algo: type) -> None:
    """SB3 copies the critic into the target (``load_state_dict``) and saves/loads the actor on its own: the
    anchors live on the policy, so those modules keep SB3's contracts."""
    model = algo(
        "SyreMlpPolicy", "Pendulum-v1", policy_kwargs=tiny(), learning_starts=20, device="cpu", seed=0
    )
    model.learn(40)
    policy = model.policy
    assert set(policy.syre_modules) == {"actor", "critic"}
    policy.critic_target.load_state_dict(policy.critic.state_dict())  # strict: raises on any syre key
    assert all(
        torch.equal(a, b) for a, b in zip(policy.critic.parameters(), policy.critic_target.parameters())
    )
    policy.actor.save(tmp_path / "actor.pth")
    actor = type(policy.actor).load(tmp_path / "actor.pth")
    obs = np.zeros((4, 3), dtype=np.float32)
    np.testing.assert_array_equal(
        actor.predict(obs, deterministic=True)[0], policy.actor.predict(obs, deterministic=True)[0]
    )


def test_warm_start_both_ways(tmp_path) -> None:
    """A syre model loads a plain checkpoint with ``exact_match=False`` (weights from it, fresh anchors of its
    own); a plain model loads a syre checkpoint the same way, ignoring syre's entries. Strict loads refuse."""
    plain = PPO(
        "MlpPolicy", "Pendulum-v1", policy_kwargs=tiny(), n_steps=64, batch_size=32, device="cpu", seed=0
    )
    plain.learn(64)
    plain.save(tmp_path / "plain.zip")
    syre = PPO("SyreMlpPolicy", "Pendulum-v1", policy_kwargs=tiny(), device="cpu", seed=1)
    fresh = {n: a.clone() for n, a in syre.policy.syre.anchors.items()}
    with pytest.raises(RuntimeError, match="Missing key"):
        syre.set_parameters(str(tmp_path / "plain.zip"), exact_match=True)
    syre.set_parameters(str(tmp_path / "plain.zip"), exact_match=False)
    assert all(torch.equal(a, b) for a, b in zip(plain.policy.parameters(), syre.policy.parameters()))
    assert all(torch.equal(fresh[n], a) for n, a in syre.policy.syre.anchors.items())
    assert all(a.abs().max() > 0 for a in fresh.values())
    assert (
        syre.policy.syre._optimizer() is syre.policy.optimizer
    )  # still acting after the optimizer was loaded

    syre.learn(64)
    syre.save(tmp_path / "syre.zip")
    back = PPO("MlpPolicy", "Pendulum-v1", policy_kwargs=tiny(), device="cpu", seed=2)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        back.set_parameters(str(tmp_path / "syre.zip"), exact_match=True)
    back.set_parameters(str(tmp_path / "syre.zip"), exact_match=False)
    assert all(torch.equal(a, b) for a, b in zip(syre.policy.parameters(), back.policy.parameters()))
    assert not any("syre" in k for k in back.policy.state_dict())


def test_shape_mismatch_fails_and_changes_nothing() -> None:
    small = PPO("SyreMlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [8]}, device="cpu", seed=0)
    large = PPO("SyreMlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [16]}, device="cpu", seed=1)
    before = {k: v.clone() for k, v in large.policy.state_dict().items()}
    for strict in (True, False):
        with pytest.raises(RuntimeError, match="size mismatch"):
            large.policy.load_state_dict(small.policy.state_dict(), strict=strict)
        assert all(torch.equal(before[k], v) for k, v in large.policy.state_dict().items())


def zero_grad_moves(policy_kwargs: dict, policy: type | str) -> dict[str, bool]:
    """Which of PPO's parameters one optimizer step with zero loss gradients moves (weights moved off their
    initial values first, so L2-Init has something to pull back; Adam alone moves nothing)."""
    model = PPO(policy, "Pendulum-v1", policy_kwargs={**tiny(), **policy_kwargs}, device="cpu", seed=0)
    with torch.no_grad():
        for p in model.policy.parameters():
            p.add_(0.5)
    before = {n: p.detach().clone() for n, p in model.policy.named_parameters()}
    zero_grad_step(model.policy.optimizer)
    return {n: not torch.equal(before[n], p.detach()) for n, p in model.policy.named_parameters()}


STRONG = {
    "syre": ("SyreMlpPolicy", "syre_kwargs", {"gamma": 0.5, "sigma0": 1.0}),
    **{
        name: (PlasticityActorCriticPolicy, "method_kwargs", {"weight_decay": 0.5})
        for name in ("l2", "l2-init", "shrink-perturb", "cbp", "redo")
    },
}


@pytest.mark.parametrize("method", list(STRONG))
def test_one_log_std_rule_for_every_method(method: str) -> None:
    """No method touches PPO's log_std, though each moves the weights; a method's own ``exclude`` adds to that
    default instead of replacing it."""
    policy, key, settings = STRONG[method]
    base = {} if method == "syre" else {"plasticity_method": method}
    moved = zero_grad_moves({**base, key: settings}, policy)
    assert not moved["log_std"] and moved["action_net.weight"] and moved["value_net.weight"]
    moved = zero_grad_moves({**base, key: {**settings, "exclude": "value_net.*"}}, policy)
    assert not moved["log_std"] and not moved["value_net.weight"] and moved["action_net.weight"]


def test_syre_exclude_adds_to_the_default() -> None:
    model = PPO(
        "SyreMlpPolicy",
        "Pendulum-v1",
        policy_kwargs={**tiny(), "syre_kwargs": {"exclude": "value_net.*"}},
        device="cpu",
    )
    names = model.policy.syre.param_names
    assert "log_std" not in names and not any(n.startswith("value_net.") for n in names)
    assert model.policy.syre_kwargs["exclude"] == "value_net.*"  # what the caller passed, saved as passed
