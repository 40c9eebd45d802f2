"""SB3's identity tasks (its tests/test_identity.py settings) with SB3's policy, syre, L2 and syre at gamma 0.

SB3's own test_identity.py asserts a mean evaluation reward above 90 (of 100) for one seed. This runs the same
settings over several seeds for each policy, to tell a bug (gamma 0 must equal plain) from the effect of the decay
itself (syre against L2 of the same strength). Writes docs/results/rl/sb3_identity.csv.

    python scripts/bench/sb3_identity.py --seeds 5
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.envs import IdentityEnvBox, IdentityEnvMultiBinary, IdentityEnvMultiDiscrete
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

import syre_rl  # noqa: F401  (registers the Syre* policy names)
from syre_rl.policies import PlasticityActorCriticPolicy

OUT = Path(__file__).resolve().parents[2] / "docs" / "results" / "rl" / "sb3_identity.csv"

# name -> (algorithm, env factory, algorithm kwargs, steps): tests/test_identity.py of SB3 2.9.2
CASES = {
    "PPO-multidiscrete": (
        PPO,
        lambda: IdentityEnvMultiDiscrete(4),
        dict(gamma=0.4, learning_rate=0.002, n_epochs=4, n_steps=256),
        1200,
    ),
    "PPO-multibinary": (
        PPO,
        lambda: IdentityEnvMultiBinary(4),
        dict(gamma=0.4, learning_rate=0.002, n_epochs=4, n_steps=256),
        1200,
    ),
    "A2C-multidiscrete": (
        A2C,
        lambda: IdentityEnvMultiDiscrete(4),
        dict(gamma=0.4, learning_rate=0.002),
        1200,
    ),
    "PPO-box": (
        PPO,
        lambda: IdentityEnvBox(eps=0.5),
        dict(learning_rate=1e-3, n_steps=256, n_epochs=4),
        1000,
    ),
}
# name -> (policy, policy_kwargs)
POLICIES = {
    "plain": ("MlpPolicy", {}),
    "syre": ("SyreMlpPolicy", {}),  # the default: gamma 2e-3, sigma0 0.01, coupled
    "syre-gamma0": ("SyreMlpPolicy", {"syre_kwargs": {"gamma": 0.0}}),
    "l2": (PlasticityActorCriticPolicy, {"plasticity_method": "l2", "method_kwargs": {"weight_decay": 2e-3}}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    if args.seeds < 1:
        print("sb3_identity.py: --seeds must be positive", file=sys.stderr)
        raise SystemExit(2)
    torch.set_num_threads(1)
    rows = []
    for case, (algo, make_env, kwargs, steps) in CASES.items():
        for policy_name, (policy, policy_kwargs) in POLICIES.items():
            for seed in range(args.seeds):
                env = DummyVecEnv([make_env])
                model = algo(
                    policy, env, seed=seed, device="cpu", policy_kwargs=dict(policy_kwargs), **kwargs
                )
                model.learn(steps)
                reward, _ = evaluate_policy(model, env, n_eval_episodes=20, warn=False)
                rows.append(
                    {
                        "case": case,
                        "policy": policy_name,
                        "seed": seed,
                        "mean_reward": round(float(reward), 2),
                    }
                )
                print(rows[-1], flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(OUT)


if __name__ == "__main__":
    main()
