"""Steps per second of the vectorized pendulum against the per-env path, raw and under SB3 PPO, in one process.

    python scripts/bench/bench_vec_envs.py                    # about a minute
    python scripts/bench/bench_vec_envs.py --ppo-steps 200000 --out docs/results/rl/vec-pendulum/bench.json

Rows: the env alone (random actions) and PPO with the ``vec-pendulum`` preset (64 envs, 64 steps per rollout,
batch 512, 10 epochs), each on ``vec_pendulum:default`` (one numpy step for the batch) and on
``drifting_pendulum:default`` (gymnasium Pendulum-v1 + wrappers + Monitor in a DummyVecEnv: today's per-env path),
and PPO with a small per-env configuration (4 envs, batch 64) as the earlier reference. Timed side by side, so
the ratios hold on a shared machine; absolute numbers depend on the load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from syre_rl.envs import make_vec_env
from syre_rl.rl.config import load_agent_preset
from syre_rl.rl.model import build_model, make_env


def env_steps_per_second(env: str, n_envs: int, steps: int) -> float:
    venv = make_vec_env(env, n_envs, seed=0)
    venv.reset()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-2, 2, size=(64, n_envs, 1)).astype(np.float32)
    start = time.perf_counter()
    for t in range(steps // n_envs):
        venv.step(actions[t % 64])
    return (steps // n_envs) * n_envs / (time.perf_counter() - start)


def ppo_steps_per_second(env: str, steps: int, **overrides: object) -> float:
    preset = dataclasses.replace(load_agent_preset("ppo", "vec-pendulum"), env=env, **overrides)
    venv = make_env(preset, n_envs=preset.n_envs, seed=0)
    model = build_model("ppo", preset, venv, seed=0, device="cpu")
    start = time.perf_counter()
    model.learn(steps)
    return model.num_timesteps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-steps", type=int, default=200_000)
    parser.add_argument("--ppo-steps", type=int, default=100_000)
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for label, fn in [
        ("env alone, 64 envs", lambda e: env_steps_per_second(e, 64, args.env_steps)),
        ("PPO vec-pendulum preset, 64 envs", lambda e: ppo_steps_per_second(e, args.ppo_steps)),
        (
            "PPO 4 envs, n_steps 1024, batch 64",
            lambda e: ppo_steps_per_second(e, args.ppo_steps // 4, n_envs=4, n_steps=1024, batch_size=64),
        ),
    ]:
        vec = fn("vec_pendulum:default")
        per_env = fn("drifting_pendulum:default")
        rows.append({"what": label, "vectorized": vec, "per_env": per_env, "ratio": vec / per_env})
    print("| what | vectorized steps/s | per-env steps/s | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['vectorized']:,.0f} | {r['per_env']:,.0f} | {r['ratio']:.1f}x |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
