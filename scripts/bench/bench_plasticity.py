"""Overhead of the plasticity callback on PPO: the same run with and without it, interleaved.

    python scripts/bench/bench_plasticity.py --steps 20480 --repeats 2

PPO on AntBulletEnv-v0 with Dohare et al.'s settings (one env, n_steps 2048, batch 128, 10 epochs, separate
256x256 ReLU actor and critic), same seed and steps for every variant: no callback, the callback at its default
interval, and the callback after every rollout (the worst case). Runs alternate variants so that load on the
machine hits all of them alike. Prints the median CPU time (this process, one torch thread) and wall time of each
variant and its ratio to the run without the callback.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import pybullet_envs_gymnasium  # noqa: F401  (registers AntBulletEnv-v0)
import torch
from stable_baselines3 import PPO
from torch import nn

from syre_rl.rl.callbacks import PlasticityCallback


class TimedPlasticityCallback(PlasticityCallback):
    """The callback, also counting its measurements and the CPU seconds they take."""

    def __init__(self, every_n_steps: int) -> None:
        super().__init__(every_n_steps=every_n_steps)
        self.measurements: list[float] = []

    def _record(self) -> None:
        start = time.process_time()
        super()._record()
        self.measurements.append(time.process_time() - start)


def run(env_id: str, steps: int, seed: int, every_n_steps: int | None) -> tuple[float, float, list[float]]:
    """CPU and wall seconds of ``model.learn(steps)`` (model and env built outside the timing), and the CPU
    seconds of each measurement."""
    model = PPO(
        "MlpPolicy",
        gym.make(env_id),
        n_steps=2048,
        batch_size=128,
        n_epochs=10,
        learning_rate=1e-4,
        ent_coef=0.0,
        vf_coef=1.0,
        seed=seed,
        device="cpu",
        policy_kwargs={"net_arch": {"pi": [256, 256], "vf": [256, 256]}, "activation_fn": nn.ReLU},
    )
    callback = TimedPlasticityCallback(every_n_steps) if every_n_steps else None
    cpu, wall = time.process_time(), time.perf_counter()
    model.learn(steps, callback=callback)
    return time.process_time() - cpu, time.perf_counter() - wall, callback.measurements if callback else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="AntBulletEnv-v0")
    parser.add_argument("--steps", type=int, default=20480)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    default_every = PlasticityCallback().every_n_steps
    variants = {
        "no callback": None,
        f"every {default_every:,} steps (default)": default_every,
        "every rollout": 2048,
    }
    times: dict[str, list[tuple[float, float, list[float]]]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, every in variants.items():
            times[name].append(run(args.env, args.steps, args.seed, every))

    base_cpu = statistics.median(cpu for cpu, _, _ in times["no callback"])
    base_wall = statistics.median(wall for _, wall, _ in times["no callback"])
    print(f"PPO on {args.env}, {args.steps:,} steps, {args.repeats} interleaved repeats, medians")
    print("| variant | measurements | CPU ms each | CPU s | CPU ratio | wall s | wall ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in times.items():
        cpu, wall = statistics.median(c for c, _, _ in runs), statistics.median(w for _, w, _ in runs)
        each = [m for _, _, ms in runs for m in ms]
        per = f"{1000 * statistics.mean(each):.0f}" if each else "-"
        print(
            f"| {name} | {len(runs[0][2])} | {per} | {cpu:.1f} | {cpu / base_cpu:.3f} | {wall:.1f} | {wall / base_wall:.3f} |"
        )


if __name__ == "__main__":
    main()
