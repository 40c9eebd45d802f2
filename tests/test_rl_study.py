"""The RL study's parts: output-side resets, LayerNorm in the policies, continual CartPole, the benchmark-wide
change reset, and the plasticity diagnosis on a real run."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from stable_baselines3 import PPO
from torch import nn

from syre_rl.envs import RegimeSchedule, VecCartPole, make_vec_env, observation_map
from syre_rl.methods import ResetAll, ResetHead, make_method
from syre_rl.plasticity import hidden_layer_groups
from syre_rl.policies.layers import LayerNormLeakyReLU, LayerNormReLU, activation_class
from syre_rl.presets import PROJECT_ROOT
from syre_rl.rl.callbacks import TaskChangeCallback


def ppo(env: str = "CartPole-v1", **policy_kwargs) -> PPO:
    kwargs = {"net_arch": {"pi": [16, 16], "vf": [16, 16]}, **policy_kwargs}
    return PPO(
        "MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu", policy_kwargs=kwargs
    )


def pendulum_ppo(**policy_kwargs) -> PPO:
    env = make_vec_env("vec_pendulum:tiny", 4, 0)
    kwargs = {"net_arch": [16, 16], "activation_fn": nn.ReLU, **policy_kwargs}
    return PPO(
        "MlpPolicy", env, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu", policy_kwargs=kwargs
    )


# ------------------------------------------------------------------------------------------------ resets
def test_reset_head_redraws_the_head_and_log_std_only_and_drops_their_adam_state() -> None:
    model = pendulum_ppo()
    policy = model.policy
    method = make_method("reset-head", policy, policy.optimizer, seed=1)
    model.learn(256)
    with torch.no_grad():
        policy.log_std.fill_(1.5)  # as if training had moved it
    trained = {n: p.detach().clone() for n, p in policy.named_parameters()}
    head = policy.action_net.weight
    assert head in policy.optimizer.state
    method.on_task_change()
    after = dict(policy.named_parameters())
    assert method.resets == 1 and sorted(method.names) == ["action_net.bias", "action_net.weight", "log_std"]
    assert not torch.equal(after["action_net.weight"], trained["action_net.weight"])
    assert torch.equal(after["log_std"], torch.zeros_like(after["log_std"]))  # log_std_init, a constant
    assert torch.equal(after["action_net.bias"], torch.zeros_like(after["action_net.bias"]))  # ortho init's 0
    # SB3 draws the head orthogonal with gain 0.01: so does the reset (all singular values 0.01).
    np.testing.assert_allclose(
        torch.linalg.svdvals(after["action_net.weight"].detach().double()), 0.01, rtol=1e-5
    )
    assert head not in policy.optimizer.state and policy.log_std not in policy.optimizer.state
    for name, value in trained.items():
        if name not in method.names:
            assert torch.equal(after[name], value), name  # everything else untouched
    with pytest.raises(ValueError, match="no trainable parameter matches"):
        ResetHead(nn.Linear(2, 2))


def test_reset_all_draws_a_fresh_network_of_the_initial_distribution() -> None:
    model = ppo(ortho_init=False)  # torch's default uniform init
    policy = model.policy
    initial = {n: p.detach().clone() for n, p in policy.named_parameters()}
    method = ResetAll(policy, seed=0)
    method.attach(policy.optimizer)
    model.learn(128)
    method.on_task_change()
    for name, p in policy.named_parameters():
        if p.numel() == 1:  # a single number has no spread to draw from: its initial value
            assert torch.equal(p, initial[name]), name
            continue
        assert not torch.equal(p, initial[name]), name  # fresh values, not the initial ones
        if p.numel() >= 64:  # same scale (a draw of a few elements says little about its std)
            std0, std1 = float(initial[name].std()), float(p.detach().std())
            assert abs(std1 - std0) < 0.2 * std0, name
    assert len(policy.optimizer.state) == 0  # a fresh optimizer


def test_periodic_resets_and_at_change_off() -> None:
    model = pendulum_ppo()
    method = make_method("reset-head", model.policy, model.policy.optimizer, every=3, at_change=False, seed=0)
    method.on_task_change()
    assert method.resets == 0
    model.learn(512)  # 4 rollouts of 32 x 4 envs, each one epoch of 2 minibatches: 8 optimizer steps
    assert method._steps == 8 and method.resets == 8 // 3


def test_benchmark_change_reset_acts_at_every_regime_change_whatever_the_method() -> None:
    model = pendulum_ppo()
    callback = TaskChangeCallback(["action_net.*", "log_std"])
    model.learn(3200 * 2, callback=callback)  # the tiny preset: a change at 3,200 run steps
    assert callback.changes == 1 and callback.resetter is not None and callback.resetter.resets == 1
    assert sorted(callback.resetter.names) == ["action_net.bias", "action_net.weight", "log_std"]
    # the resetter lives outside the policy: a saved model holds the method's tensors only
    assert set(model.policy.state_dict()) == set(pendulum_ppo().policy.state_dict())


# --------------------------------------------------------------------------------------------- LayerNorm
def test_layer_norm_is_in_the_forward_pass_of_every_policy() -> None:
    x = torch.randn(5, 7)
    torch.testing.assert_close(LayerNormReLU()(x), F.relu(F.layer_norm(x, (7,))))
    torch.testing.assert_close(LayerNormLeakyReLU()(x), F.leaky_relu(F.layer_norm(x, (7,)), 0.1))
    assert activation_class("relu", True) is LayerNormReLU and activation_class("relu") is nn.ReLU

    for policy_name in ("MlpPolicy", "SyreMlpPolicy"):
        model = PPO(
            policy_name, "CartPole-v1", seed=0, device="cpu", policy_kwargs={"activation_fn": LayerNormReLU}
        )
        policy = model.policy
        obs = torch.randn(8, 4)
        before = policy.get_distribution(obs).distribution.probs.detach()
        with torch.no_grad():  # LayerNorm makes the next layer blind to the scale of the previous one
            policy.mlp_extractor.policy_net[0].weight.mul_(10.0)
            policy.mlp_extractor.policy_net[0].bias.mul_(10.0)
        after = policy.get_distribution(obs).distribution.probs.detach()
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-6)
        plain = PPO(
            "MlpPolicy", "CartPole-v1", seed=0, device="cpu"
        )  # the same weights without LayerNorm differ
        assert not torch.allclose(plain.policy.get_distribution(obs).distribution.probs, before)
        # measurements and unit resets see the normalised layers as hidden layers
        assert [len(v) for v in hidden_layer_groups(policy).values()] == [2, 2]


# -------------------------------------------------------------------------------------- continual CartPole
def test_vectorized_cartpole_matches_cartpole_v1_step_for_step() -> None:
    n, seed = 3, 5
    venv = VecCartPole(n, RegimeSchedule(10**9, seed, n_envs=n), {}, seed=seed)
    refs = [gym.make("CartPole-v1") for _ in range(n)]
    obs = venv.reset()
    for i, ref in enumerate(refs):
        np.testing.assert_array_equal(obs[i], ref.reset(seed=seed + i)[0])
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(400):
        actions = rng.integers(0, 2, size=n)
        obs, rewards, dones, infos = venv.step(actions)
        for i, ref in enumerate(refs):
            ref_obs, ref_reward, terminated, truncated, _ = ref.step(int(actions[i]))
            assert rewards[i] == ref_reward and dones[i] == (terminated or truncated)
            if dones[i]:
                ends += 1
                np.testing.assert_allclose(infos[i]["terminal_observation"], ref_obs, rtol=1e-6, atol=1e-6)
                assert infos[i]["TimeLimit.truncated"] == (truncated and not terminated)
                np.testing.assert_array_equal(obs[i], ref.reset()[0])
            else:
                np.testing.assert_allclose(obs[i], ref_obs, rtol=1e-6, atol=1e-6)
    assert ends > 10  # random pushes fail often: terminations and resets are covered


def test_continual_cartpole_offsets_the_observation_per_level_and_not_in_the_first() -> None:
    venv = make_vec_env("continual_cartpole:tiny", 2, seed=4)
    inner = venv.venv.venv  # VecMonitor -> VecObservationMap -> VecCartPole
    obs = venv.reset()
    np.testing.assert_array_equal(obs, inner._obs())  # level 0: no offset
    offsets = [observation_map("offset", 4, k, 4, 0, 2.0) for k in range(1, 40)]
    assert all(o.shape == (4,) for o in offsets) and not np.allclose(offsets[0], offsets[1])
    assert abs(float(np.std(np.concatenate(offsets))) - 2.0) < 0.35  # std 2 per element
    seen = set()
    for _ in range(2048 // 2 + 600):
        obs, _, _, infos = venv.step(np.zeros(2, dtype=np.int64))
        for i in range(2):
            k = int(inner.regime_index[i])
            seen.add(k)
            np.testing.assert_allclose(obs[i], inner._obs()[i] + observation_map("offset", 4, k, 4, 0, 2.0))
    assert seen == {0, 1}


# ------------------------------------------------------------------------------------------- the scripts
def test_method_settings_on_the_command_line_are_checked_in_one_line(tmp_path) -> None:
    script = str(PROJECT_ROOT / "scripts" / "rl_plasticity.py")
    for extra, message in [
        (["--shrink-perturb", "--method-kwargs", "{form: 1"], "not JSON"),
        (["--shrink-perturb", "--method-kwargs", '{"shape": 1}'], "has no setting shape"),
        (["--syre", "--method-kwargs", '{"gamma": 1}'], "needs a competing method"),
    ]:
        run = subprocess.run(
            [
                sys.executable,
                script,
                "--preset",
                "vec-pendulum-smoke",
                "--run-dir",
                str(tmp_path / "r"),
                *extra,
            ],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_diagnosis_finds_the_output_side_on_the_pendulum_benchmark(tmp_path) -> None:
    """A real run of the fast benchmark (one regime of 100k steps), then counterfactual resets at its change: the
    actor's output side restores a fresh agent's learning, the critic and the optimizer state do not."""
    from syre_rl.rl.diagnose import diagnose, write_diagnosis

    run = tmp_path / "run"
    script = str(PROJECT_ROOT / "scripts" / "rl_plasticity.py")
    args = ["--preset", "vec-pendulum", "--regimes", "1", "--no-fresh", "--seed", "0", "--run-dir", str(run)]
    subprocess.run([sys.executable, script, *args], check=True, capture_output=True)
    result = diagnose(
        run,
        step=100_000,
        steps=25_600,
        seeds=1,
        counterfactuals=["as-is", "head+log_std", "critic", "optimizer"],
    )
    closed = {r["counterfactual"]: r["gap_closed"] for r in result.summary()}
    assert result.regime == 1 and result.start_step >= 100_000
    assert closed["head+log_std"] > 0.5 and closed["critic"] < 0.5 and closed["optimizer"] < 0.5
    assert result.restoring() == ["head+log_std"]
    written = write_diagnosis(result, tmp_path / "out")
    assert all(p.is_file() for p in written)
    assert json.loads(written[0].read_text())["restoring"] == ["head+log_std"]


def _report_module():
    from syre_rl.rl import report

    return report


def test_the_report_states_the_phenomenon_the_control_and_the_separations_first() -> None:
    checks = _report_module().checks

    def row(mean: float, lo: float, hi: float) -> dict:
        return {"mean": mean, "lo": lo, "hi": hi, "seeds": 5}

    by = {
        ("ppo", "figure_after"): row(-1200, -1300, -1100),
        ("ppo", "late_minus_early"): row(0, -50, 50),
        ("ppo-reset-all", "figure_after"): row(20, -30, 70),
        ("ppo-x", "figure_after_minus_ppo"): row(500, 300, 700),
        ("ppo-y", "figure_after_minus_ppo"): row(50, -100, 200),
    }
    text = checks(by, ["ppo", "ppo-reset-all", "ppo-x", "ppo-y"], "ppo", "ppo-reset-all")
    assert "it loses plasticity" in text and "about 0, as it must be" in text
    assert "ppo-x +500" in text and "ppo-y" not in text and not text.startswith("**")
    by["ppo-reset-all", "figure_after"] = row(-600, -700, -500)  # a broken harness is said at the top
    assert checks(by, ["ppo", "ppo-reset-all"], "ppo", "ppo-reset-all").startswith("**The control arm")
    by["ppo", "figure_after"] = row(-20, -90, 50)  # no phenomenon: no comparison
    text = checks(by, ["ppo", "ppo-reset-all", "ppo-x"], "ppo", "ppo-reset-all")
    assert (
        "no loss of plasticity shown" in text and "methods are not compared" in text and "ppo-x" not in text
    )


def test_the_diagnosis_runs_each_distinct_counterfactual_once() -> None:
    from syre_rl.rl.diagnose import COUNTERFACTUALS, _distinct

    everything = list(COUNTERFACTUALS)
    assert _distinct(pendulum_ppo(), everything) == everything
    assert _distinct(ppo(), everything) == ["as-is", "head", "actor-hidden", "critic", "optimizer", "all"]  # discrete


@pytest.mark.parametrize("name", ["syre", "l2", "l2-init"])
def test_a_method_reaches_log_std_only_when_its_include_names_it(name: str) -> None:
    """The scope option: every decay reaches the output layers; ``log_std`` only when ``include`` names it."""
    reached = {}
    for include in (None, ["*", "log_std"]):
        model = pendulum_ppo()
        policy = model.policy
        strength = {"gamma": 0.5, "mode": "coupled"} if name == "syre" else {"weight_decay": 0.5}
        make_method(name, policy, policy.optimizer, include=include, **strength)
        with torch.no_grad():  # away from every anchor (L2-Init's: the initial weights; log_std 0 -> 1)
            for p in policy.parameters():
                p.add_(1.0)
        head = policy.action_net.weight.detach().clone()
        policy.optimizer.zero_grad()
        for p in policy.parameters():
            p.grad = torch.zeros_like(p)
        policy.optimizer.step()  # a zero gradient: only the decay moves the weights
        assert not torch.equal(policy.action_net.weight, head)  # the output layer is in every method's scope
        reached[include is not None] = not torch.equal(policy.log_std, torch.ones_like(policy.log_std))
    assert reached == {False: False, True: True}
