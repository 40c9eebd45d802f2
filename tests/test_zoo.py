"""RL Baselines3 Zoo trains a Syre policy on a syre_rl task from a hyperparameter file, and reloads it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from syre_rl.presets import PROJECT_ROOT

pytest.importorskip("rl_zoo3", reason="the optional extra zoo (pip install syre_rl[zoo])")


@pytest.mark.slow
def test_rl_zoo_trains_and_reloads_a_syre_policy(tmp_path) -> None:
    from stable_baselines3 import PPO

    from syre_rl.policies import SyreActorCriticPolicy

    shipped = yaml.safe_load((PROJECT_ROOT / "agents" / "zoo" / "ppo.yml").read_text())
    env = "syre_rl/DriftingPendulum-v0"
    small = {**shipped[env], "n_envs": 2, "n_timesteps": 512, "n_steps": 128, "batch_size": 128}
    (tmp_path / "hp.yml").write_text(yaml.safe_dump({env: small}))
    common = ["--algo", "ppo", "--env", env, "--gym-packages", "syre_rl", "-f", str(tmp_path / "logs")]
    train = [sys.executable, "-m", "rl_zoo3.train", *common, "--conf-file", str(tmp_path / "hp.yml")]
    subprocess.run([*train, "--seed", "0", "--eval-freq", "-1"], check=True, capture_output=True, timeout=600)
    saved = tmp_path / "logs" / "ppo" / "syre_rl-DriftingPendulum-v0_1" / "syre_rl-DriftingPendulum-v0.zip"
    model = PPO.load(saved, device="cpu")
    assert isinstance(model.policy, SyreActorCriticPolicy) and model.num_timesteps >= 512
    syre = model.policy.syre_modules[""]
    assert syre.gamma == 0.1 and syre.mode == "decoupled" and len(syre.anchors) > 0

    enjoy = [sys.executable, "-m", "rl_zoo3.enjoy", *common, "--exp-id", "1", "--no-render", "-n", "200"]
    run = subprocess.run(enjoy, check=True, capture_output=True, text=True, timeout=600)
    assert "Mean reward" in run.stdout and "Episode Length 200" in run.stdout
