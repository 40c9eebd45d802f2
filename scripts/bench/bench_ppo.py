"""Throughput of PPO on PyBullet Ant with SB3's MlpPolicy and with SyreActorCriticPolicy, side by side.

    python scripts/bench/bench_ppo.py                      # default preset, 10 repeats of 4,096 steps each
    python scripts/bench/bench_ppo.py --steps 16384 --repeats 4

Both arms use the same preset, seed and number of steps; only ``method`` differs. Repeats interleave the
arms (ABBA order) so that drift in machine load falls on both. Two figures come out:

- end to end: env steps/s of ``model.learn`` (collection + updates), median over repeats, and the median of
  the per-repeat ratios (robust to load that changes between repeats);
- the syre hook alone: time of ``optimizer.step()`` with and without syre on the same policy, and the share
  of a run's time that difference makes (it is small and less noisy than the end-to-end ratio).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import torch

from syre_rl.rl.config import load_agent_preset
from syre_rl.rl.model import build_model, make_env


def steps_per_second(preset, method: str, steps: int, seed: int) -> float:
    arm = dataclasses.replace(preset, method=method, eval_freq=0)
    env = make_env(arm, n_envs=arm.n_envs, seed=seed)
    model = build_model("ppo", arm, env, seed=seed, device="cpu")
    started = time.perf_counter()
    model.learn(steps)
    elapsed = time.perf_counter() - started
    env.close()
    return model.num_timesteps / elapsed


def optimizer_step_ms(preset, method: str, calls: int = 300) -> float:
    """Milliseconds per ``optimizer.step()`` of the preset's policy, with gradients present."""
    arm = dataclasses.replace(preset, method=method)
    env = make_env(arm, n_envs=1, seed=0)
    policy = build_model("ppo", arm, env, seed=0, device="cpu").policy
    for p in policy.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    for _ in range(20):
        policy.optimizer.step()
    started = time.perf_counter()
    for _ in range(calls):
        policy.optimizer.step()
    env.close()
    return (time.perf_counter() - started) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", help="preset of agents/ppo.yaml")
    parser.add_argument("--steps", type=int, default=4096, help="env steps per measurement")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = load_agent_preset("ppo", args.preset)
    print(
        f"PPO on {preset.env}, preset {args.preset}: {preset.n_envs} envs, net {preset.net_arch}, "
        f"{args.steps:,} steps x {args.repeats} repeats; {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread"
    )

    rates: dict[str, list[float]] = {"none": [], "syre": []}
    for repeat in range(args.repeats):
        order = ("none", "syre") if repeat % 2 == 0 else ("syre", "none")
        for method in order:
            rates[method].append(steps_per_second(preset, method, args.steps, args.seed))
        print(
            f"  repeat {repeat + 1}: MlpPolicy {rates['none'][-1]:.0f} steps/s, "
            f"SyreActorCriticPolicy {rates['syre'][-1]:.0f} steps/s"
        )
    plain, syre = statistics.median(rates["none"]), statistics.median(rates["syre"])
    pair_ratios = [s / n for s, n in zip(rates["syre"], rates["none"], strict=True)]
    print(
        f"end to end: MlpPolicy {plain:.0f} steps/s, SyreActorCriticPolicy {syre:.0f} steps/s (medians); "
        f"syre / plain = {statistics.median(pair_ratios):.3f} (median of per-repeat ratios "
        f"{', '.join(f'{r:.3f}' for r in pair_ratios)})"
    )

    step_plain, step_syre = optimizer_step_ms(preset, "none"), optimizer_step_ms(preset, "syre")
    rollout = preset.n_steps * preset.n_envs
    updates_per_step = preset.n_epochs * -(-rollout // preset.batch_size) / rollout
    share = (step_syre - step_plain) * 1e-3 * updates_per_step * plain
    print(
        f"optimizer.step(): Adam {step_plain:.3f} ms, Adam + syre {step_syre:.3f} ms; at "
        f"{updates_per_step:.3f} updates per env step that is {share:.2%} of the run's time"
    )


if __name__ == "__main__":
    main()
