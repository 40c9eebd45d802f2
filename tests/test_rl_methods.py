"""Competing plasticity methods inside SB3 policies: they train, and save/load carries their state exactly."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import PPO, SAC
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from syre_rl.core import Syre, SyreConfig
from syre_rl.envs import make_vec_env
from syre_rl.methods import METHODS, make_method
from syre_rl.policies import PlasticityActorCriticPolicy, PlasticitySACPolicy, SyreActorCriticPolicy
from syre_rl.presets import PROJECT_ROOT
from syre_rl.rl.callbacks import TaskChangeCallback


def state_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor):
            if not torch.equal(x, y):
                return False
        elif isinstance(x, dict):
            if not state_equal(x, y):
                return False
        elif isinstance(x, (list, tuple)):
            if len(x) != len(y) or not state_equal(dict(enumerate(x)), dict(enumerate(y))):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("name", list(METHODS))
def test_ppo_with_each_method_trains_and_round_trips(tmp_path, name: str) -> None:
    env = gym.make("Pendulum-v1")
    kwargs = {"cbp": {"maturity_threshold": 20}, "redo": {"every": 2}}.get(name, {})
    model = PPO(
        PlasticityActorCriticPolicy,
        env,
        n_steps=128,
        batch_size=64,
        n_epochs=2,
        seed=0,
        policy_kwargs=dict(plasticity_method=name, method_kwargs=kwargs, net_arch=[32, 32]),
    )
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(512)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.policy.parameters()))
    # syre sits in a policy as the bare Syre, under the attribute the Syre* policies use (the same state dict).
    kind = Syre if name == "syre" else METHODS[name]
    method = model.policy.method_modules()[""]
    assert type(method) is kind
    assert method is getattr(model.policy, "syre" if name == "syre" else "plasticity_method")
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = PPO.load(path, env=env)
    assert type(loaded.policy.method_modules()[""]) is kind
    assert state_equal(method.state_dict(), loaded.policy.method_modules()[""].state_dict())
    assert state_equal(model.policy.state_dict(), loaded.policy.state_dict())
    obs, _ = env.reset(seed=1)
    assert torch.equal(
        torch.as_tensor(model.predict(obs, deterministic=True)[0]),
        torch.as_tensor(loaded.predict(obs, deterministic=True)[0]),
    )


def test_l2_init_anchors_survive_a_reload_as_the_true_initial_weights(tmp_path) -> None:
    env = gym.make("Pendulum-v1")
    model = PPO(
        PlasticityActorCriticPolicy,
        env,
        n_steps=64,
        batch_size=32,
        seed=0,
        policy_kwargs=dict(plasticity_method="l2-init"),
    )
    initial = {n: p.detach().clone() for n, p in model.policy.named_parameters()}
    model.learn(128)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", env=env)  # builds fresh weights, then loads the saved state
    anchors = loaded.policy.plasticity_method.decay.anchors
    assert anchors and all(torch.equal(anchors[n], initial[n]) for n in anchors)


def test_sac_gets_a_method_per_optimizer() -> None:
    model = SAC(
        PlasticitySACPolicy,
        gym.make("Pendulum-v1"),
        learning_starts=50,
        seed=0,
        policy_kwargs=dict(plasticity_method="shrink-perturb", net_arch=[16, 16]),
    )
    methods = model.policy.method_modules()
    assert set(methods) == {"actor", "critic"} and methods["actor"] is not methods["critic"]
    # On the policy, not inside SB3's actor and critic, whose state dicts SB3 copies and saves on their own.
    assert not any("plasticity" in k for k in model.policy.critic.state_dict())
    model.learn(100)


@pytest.mark.parametrize("name", ["cbp", "redo"])
def test_sac_actor_heads_mu_and_log_std_both_read_the_last_hidden_layer(name: str) -> None:
    """SAC's actor has two Linear heads on its last hidden layer: a reset zeroes the unit's columns (and Adam
    state) in both, and CBP's utility reads both."""
    model = SAC(
        PlasticitySACPolicy,
        gym.make("Pendulum-v1"),
        learning_starts=32,
        batch_size=32,
        seed=0,
        policy_kwargs=dict(plasticity_method=name, net_arch=[16, 16]),
    )
    model.learn(64)  # some updates: Adam has state for every head
    actor = model.policy.actor
    method = model.policy.plasticity_method_actor  # on the policy, beside SB3's actor
    last = method.layers[-1]
    assert last.out_layers == (actor.mu, actor.log_std)
    assert last.in_layer is actor.latent_pi[2]
    units = torch.tensor([0, 5])
    assert (actor.log_std.weight[:, units] != 0).all() and (actor.mu.weight[:, units] != 0).all()
    method.reset(len(method.layers) - 1, 0, units, actor.optimizer)
    for head in (actor.mu, actor.log_std):
        assert (head.weight[:, units] == 0).all()
        assert (actor.optimizer.state[head.weight]["exp_avg"][:, units] == 0).all()
        assert (head.weight[:, [1, 2, 3]] != 0).all()  # other units untouched


def test_a_regime_change_calls_the_boundary_form_of_shrink_perturb() -> None:
    """Ash & Adams' Shrink & Perturb acts once per regime change of a continuing task (and only then)."""
    env = make_vec_env("drifting_pendulum", n_envs=1, seed=0, start_step=19_900)  # a change within 200 steps
    model = PPO(
        PlasticityActorCriticPolicy,
        env,
        n_steps=256,
        batch_size=64,
        n_epochs=1,
        learning_rate=0.0,  # only the method moves the weights
        seed=0,
        policy_kwargs=dict(
            plasticity_method="shrink-perturb",
            method_kwargs={"form": "boundary", "shrink": 0.5, "noise_std": 0.0},
            net_arch=[16, 16],
        ),
    )
    before = model.policy.action_net.weight.detach().clone()
    callback = TaskChangeCallback()
    model.learn(256, callback=callback)
    assert callback.changes == 1
    torch.testing.assert_close(model.policy.action_net.weight.detach(), 0.5 * before)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="plasticity_method must be one of"):
        PPO(
            PlasticityActorCriticPolicy,
            gym.make("Pendulum-v1"),
            policy_kwargs=dict(plasticity_method="magic"),
        )


def test_train_ppo_runs_a_competing_method_and_logs_plasticity(tmp_path) -> None:
    run = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "train_ppo.py"),
            "--preset",
            "smoke",
            "--redo",
            "--env",
            "drifting_pendulum",
            "--total-timesteps",
            "1024",
            "--run-dir",
            str(run),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = EventAccumulator(str(run / "tb")).Reload()
    tags = events.Tags()["scalars"]
    assert any(t.startswith("plasticity/actor/") for t in tags), tags
    assert any(t.startswith("plasticity/critic/") for t in tags)
    assert "env/regime_index" in tags
    assert '"method": "redo"' in (run / "config.json").read_text()


# ------------------------------------------------------------------------------ one syre, one set of defaults
def test_the_policies_and_the_registry_share_syres_defaults_field_by_field() -> None:
    """SyreMlpPolicy, the Plasticity policies and make_method("syre") all default to SyreConfig()."""
    import dataclasses

    model = PPO("SyreMlpPolicy", "Pendulum-v1", n_steps=64, policy_kwargs=dict(net_arch=[8]))
    policy_config = model.policy.syre_config
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    registry_config = make_method("syre", net, torch.optim.Adam(net.parameters())).config
    plasticity = PPO(
        PlasticityActorCriticPolicy, "Pendulum-v1", n_steps=64, policy_kwargs=dict(plasticity_method="syre")
    ).policy.syre_config
    defaults = SyreConfig()
    for field in dataclasses.fields(SyreConfig):
        if field.name == "seed":  # drawn per policy unless given
            continue
        expected = getattr(defaults, field.name)
        assert getattr(policy_config, field.name) == expected, field.name
        assert getattr(registry_config, field.name) == expected, field.name
        assert getattr(plasticity, field.name) == expected, field.name
        assert METHODS["syre"].defaults()[field.name] == expected, field.name


@pytest.mark.parametrize("settings", [{}, {"gamma": 0.5, "sigma0": 0.1, "mode": "coupled", "spread": 0.2}])
def test_plasticity_policy_with_syre_trains_exactly_as_the_syre_policy(settings) -> None:
    """The same method, settings and seed through either policy: the very same weights and anchors."""

    def trained(policy, key):
        torch.manual_seed(0)
        model = PPO(
            policy,
            "Pendulum-v1",
            n_steps=64,
            batch_size=32,
            n_epochs=2,
            seed=0,
            policy_kwargs={"net_arch": [16, 16], **key},
        )
        model.learn(256)
        return model.policy.state_dict()

    syre = trained("SyreMlpPolicy", {"syre_kwargs": settings})
    plasticity = trained(PlasticityActorCriticPolicy, {"plasticity_method": "syre", "method_kwargs": settings})
    config = trained(SyreActorCriticPolicy, {"syre_kwargs": SyreConfig(**settings)})
    assert syre.keys() == plasticity.keys() == config.keys()
    assert any(k.startswith("syre.theta0/") for k in syre)
    for key in syre:
        assert torch.equal(syre[key], plasticity[key]), key
        assert torch.equal(syre[key], config[key]), key


@pytest.mark.parametrize("name", list(METHODS))
def test_every_methods_state_dict_holds_tensors_only(name: str) -> None:
    """Generator states, counters and per-layer lists are tensors too (no ``_extra_state`` objects), so a policy's
    state dict loads with ``torch.load(weights_only=True)``; and it round-trips exactly."""
    import io

    kwargs = {
        "cbp": {"maturity_threshold": 3, "replacement_rate": 0.2},
        "redo": {"every": 2, "tau": 0.5, "window": True},
        "reset-head": {"every": 3},
        "shrink-perturb": {"noise_std": 1e-3},
    }.get(name, {})
    model = PPO(
        PlasticityActorCriticPolicy,
        "Pendulum-v1",
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        seed=0,
        policy_kwargs=dict(plasticity_method=name, method_kwargs=kwargs, net_arch=[16, 16]),
    )
    model.learn(256)
    state = model.policy.state_dict()
    assert not [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    assert not [k for k in state if k.endswith("_extra_state")]
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=True)
    twin = PPO(
        PlasticityActorCriticPolicy,
        "Pendulum-v1",
        n_steps=64,
        seed=1,
        policy_kwargs=dict(plasticity_method=name, method_kwargs=kwargs, net_arch=[16, 16]),
    )
    twin.policy.load_state_dict(reloaded)
    assert state_equal(state, twin.policy.state_dict())
