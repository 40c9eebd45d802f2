"""Steps per second of every continuing task against its bare base env, random actions, one process.

    python scripts/bench/bench_envs.py --steps 5000

Prints one row per task: base env steps/s, task steps/s (base env + schedule wrappers) and their ratio.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

from syre_rl.envs import TASKS, load_task, make_task_env


def steps_per_second(env: gym.Env, steps: int) -> float:
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    seconds = time.perf_counter() - start
    env.close()
    return steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()
    print("| task | base env | base steps/s | task steps/s | task / base |")
    print("|---|---|---|---|---|")
    for task in TASKS:
        base_id = load_task(task).base_env
        base = steps_per_second(gym.make(base_id), args.steps)
        wrapped = steps_per_second(make_task_env(task, change_every=1000), args.steps)
        print(f"| {task} | {base_id} | {base:,.0f} | {wrapped:,.0f} | {wrapped / base:.2f} |")


if __name__ == "__main__":
    main()
