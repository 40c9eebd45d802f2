"""Why plain PPO stops learning on ``vec_pendulum:rotated``: its actions saturate on the new regime's inputs.

    python scripts/bench/probe_action_saturation.py --seeds 0,1,2 --out docs/results/rl/vec-pendulum/saturation.json

Trains plain PPO with the ``vec-pendulum`` preset through regime 0 (100k steps), then runs the
policy for one episode on regime 0 and on regime 1 (a new orthogonal map of the observation) and records, on the
visited states: the median |action mean|, the fraction of action means beyond the torque limit (such actions are
all clipped to the same torque, so sampling gives PPO no signal about the mean), the critic's mean value, and
the dead fractions of actor and critic (units never active on those states).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from syre_rl.rl.config import load_agent_preset
from syre_rl.rl.model import build_model, make_env


def probe(model, preset, seed: int, start_step: int) -> dict[str, float]:
    env = make_env(preset, n_envs=preset.n_envs, seed=seed, start_step=start_step)  # the run's seed: its maps
    obs, rows = env.reset(), []
    for _ in range(200):
        action, _ = model.predict(obs, deterministic=False)
        rows.append(obs)
        obs, *_ = env.step(action)
    states = torch.as_tensor(np.concatenate(rows))
    policy = model.policy
    with torch.no_grad():
        actor, critic = policy.mlp_extractor(policy.extract_features(states))
        mean, value = policy.action_net(actor), policy.value_net(critic)
    bound = float(env.action_space.high[0])
    return {
        "median_abs_action_mean": float(mean.abs().median()),
        "saturated_fraction": float((mean.abs() > bound).float().mean()),
        "value_mean": float(value.mean()),
        "actor_dead_fraction": float((actor > 0).float().mean(0).le(0.01).float().mean()),
        "critic_dead_fraction": float((critic > 0).float().mean(0).le(0.01).float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = load_agent_preset("ppo", "vec-pendulum")
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        model = build_model(
            "ppo", preset, make_env(preset, n_envs=preset.n_envs, seed=seed), seed=seed, device="cpu"
        )
        model.learn(100_000)
        row = {
            "seed": seed,
            "regime0": probe(model, preset, seed, 0),
            "regime1": probe(model, preset, seed, 100_000),
        }
        results.append(row)
        print(json.dumps(row))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
