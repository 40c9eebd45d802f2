"""Measure RL plasticity on a continuing task: a continuing PPO agent against fresh agents, regime by regime.

    python scripts/rl_plasticity.py --preset vec-pendulum --seed 0                 # plain PPO, ~2 CPU-minutes
    python scripts/rl_plasticity.py --preset vec-pendulum --syre --sigma0 1 --seed 0
    python scripts/sweep.py rl:vec-pendulum-plasticity --jobs 1                   # the whole study

Trains one agent through every regime of the preset's task and records, per regime, its *regime return* (mean
return of the episodes in the last quarter of the regime) and the *plasticity figure*: that return minus a fresh
plain-PPO agent's regime return on the same regime (same seed and settings, trained ``change_every`` steps from
scratch). Fresh references depend only on preset, task and seed, so they are computed once and cached in
``--fresh-dir`` (default: ``fresh/`` beside the run directory), shared by every method of a sweep. Effective
rank, dead units and weight magnitudes of actor and critic are measured at the end of every regime.

Writes ``<run-dir>/results.json`` (``done: true`` at the end), TensorBoard logs in ``<run-dir>/tb``
(``plasticity/regime_return``, ``plasticity/return_vs_fresh``, ``plasticity/actor/...``) and a checkpoint of the
agent at the end of every regime (``checkpoints/step_<n>``, what ``scripts/diagnose_plasticity.py`` starts from).
A run is short, so an interrupted one restarts from scratch (``--force``; it replaces only a run of this script). Bad input: one line on
stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from stable_baselines3.common.logger import configure

from syre_rl import runs
from syre_rl.cli import OneLineParser, UsageError, check_writable, seed_int
from syre_rl.cli import fail as cli_fail
from syre_rl.envs import RegimeLoggerCallback, resolve_env
from syre_rl.policies.layers import ACTIVATIONS
from syre_rl.presets import PROJECT_ROOT, PresetError, build_preset
from syre_rl.rl.agents import AgentPreset, agent_preset_names, load_agent_preset
from syre_rl.rl.callbacks import TaskChangeCallback
from syre_rl.rl.continual import (
    RegimeCheckpointCallback,
    RegimeReturnCallback,
    RegimeSnapshotCallback,
    fresh_regime_return,
)
from syre_rl.rl.methods import POLICY_CHOICES
from syre_rl.rl.model import build_model, make_env
from syre_rl.rl.run_dir import RunDir

PROG = "rl_plasticity.py"
RESULTS = runs.RESULTS
KIND = "rl-plasticity"


def fail(message: str) -> NoReturn:
    cli_fail(PROG, message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--preset", default="vec-pendulum", help="preset of agents/ppo.yaml (default vec-pendulum)"
    )
    p.add_argument("--env", help="a continuing task preset (default: the preset's)")
    method = p.add_mutually_exclusive_group()
    for name, build in POLICY_CHOICES.items():
        if name != "none":
            flag = f"--{name.replace('_', '-')}"
            method.add_argument(flag, dest="method", action="store_const", const=name, help=build.__doc__)
    p.add_argument("--sigma0", type=float, help="syre anchor scale")
    p.add_argument("--gamma", type=float, help="syre decay strength")
    p.add_argument("--mode", choices=["coupled", "decoupled"], help="syre decay mode")
    p.add_argument(
        "--anchor-scale", choices=["fan_in", "init", "absolute"], help="what sigma0 is relative to"
    )
    p.add_argument(
        "--method-kwargs",
        type=json_object,
        help='settings of the chosen method as JSON, over the preset\'s (e.g. \'{"form": "boundary"}\')',
    )
    p.add_argument("--layer-norm", action="store_true", help="LayerNorm before every hidden activation")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), help="hidden activation (default: the preset's)")
    p.add_argument("--weight-decay", type=float, help="Adam's coupled weight decay toward 0 (any method)")
    p.add_argument("--adam-betas", type=float, nargs=2, help="Adam's betas, e.g. 0.99 0.99")
    p.add_argument("--regimes", type=int, help="regimes to run (default: the task's)")
    p.add_argument("--tail", type=float, default=0.25, help="fraction of a regime whose episodes count")
    p.add_argument("--no-fresh", action="store_true", help="skip the fresh agents (no plasticity figure)")
    p.add_argument("--fresh-dir", type=Path, help="cache of fresh agents' regime returns")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--run-dir", type=Path, help="default: runs/plasticity/<preset>-<env>-<method>-s<seed>")
    p.add_argument("--force", action="store_true", help="replace an existing run of this script")
    args = p.parse_args(argv)
    if not 0 < args.tail <= 1:
        p.error(f"--tail must be in (0, 1], got {args.tail}")
    if args.regimes is not None and args.regimes < 1:
        p.error(f"--regimes must be >= 1, got {args.regimes}")
    return args


def preset_from_args(args: argparse.Namespace) -> AgentPreset:
    if args.preset not in agent_preset_names("ppo"):
        raise ValueError(
            f"unknown preset {args.preset!r}; choose one of: {', '.join(agent_preset_names('ppo'))}"
        )
    preset = load_agent_preset("ppo", args.preset)
    overrides = {
        "env": args.env,
        "method": args.method,
        "weight_decay": args.weight_decay,
        "adam_betas": list(args.adam_betas) if args.adam_betas else None,
        "activation": args.activation,
        "layer_norm": True if args.layer_norm else None,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    method = overrides.get("method", preset.method)
    if args.method_kwargs is not None:
        if method in ("none", "syre"):
            raise ValueError("--method-kwargs needs a competing method (--syre takes --gamma, --sigma0, ...)")
        settings = {**preset.method_kwargs.get(method, {}), **args.method_kwargs}
        overrides["method_kwargs"] = {**preset.method_kwargs, method: settings}
    syre = {"sigma0": args.sigma0, "gamma": args.gamma, "mode": args.mode, "anchor_scale": args.anchor_scale}
    syre = {k: v for k, v in syre.items() if v is not None}
    if syre and method != "syre":
        raise ValueError(f"--{next(iter(syre)).replace('_', '-')} needs --syre")
    if syre:
        overrides["syre"] = {**preset.syre, **syre}
    return build_preset(type(preset), {**dataclasses.asdict(preset), **overrides}, f"ppo:{args.preset}")


def json_object(text: str) -> dict[str, Any]:
    """argparse type: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"need a JSON object, got {text!r}")
    return value


# Preset fields that do not change how a plain agent trains: left out of the fresh agents' cache key.
NOT_TRAINING = ("method", "method_kwargs", "description", "reference", "reference_returns", "plasticity_every",
                "eval_freq", "eval_episodes", "checkpoint_freq")  # fmt: skip


def fresh_key(preset: AgentPreset, seed: int, k: int, change_every: int, tail: float) -> str:
    """Cache name of a fresh agent's regime return: the plain agent's training settings, seed, regime, window."""
    plain = {
        name: value
        for name, value in dataclasses.asdict(preset).items()
        if name not in NOT_TRAINING and name != "syre"
    }
    text = json.dumps([plain, seed, k, change_every, tail], sort_keys=True)
    return f"s{seed}-r{k}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def write_json(path: Path, data: dict[str, Any]) -> None:
    runs.atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def check(argv: list[str]) -> None:
    """Validate a command line without running it (the sweep checks its runs' arguments with this)."""
    args = parse_args(argv)
    preset = preset_from_args(args)
    if resolve_env(preset.env).task is None:
        raise ValueError(f"{preset.env} is stationary; the plasticity figure needs a continuing task")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        preset = preset_from_args(args)
        task = resolve_env(preset.env).task
    except (PresetError, ValueError) as err:
        fail(str(err))
    if task is None:
        fail(f"{preset.env} is stationary; the plasticity figure needs a continuing task")
    regimes = args.regimes or task.regimes
    ce = task.change_every
    run_dir = args.run_dir or PROJECT_ROOT / "runs" / "plasticity" / (
        f"{args.preset}-{preset.env.replace(':', '-')}-{preset.method}-s{args.seed}"
    )
    fresh_dir = args.fresh_dir or run_dir.parent / "fresh"
    try:
        check_writable(run_dir, "run directory")
        check_writable(fresh_dir, "fresh-agent directory")
        clear = runs.prepare_new_run(run_dir, KIND, args.force)
    except UsageError as err:
        fail(str(err).replace("pass --resume to continue it or --force", "pass --force"))
    if clear:
        runs.clear_run(run_dir)
    runs.write_marker(run_dir, KIND)
    fresh_dir.mkdir(parents=True, exist_ok=True)
    seed = args.seed

    def env_at(start_step: int) -> Any:
        return make_env(preset, n_envs=preset.n_envs, seed=seed, start_step=start_step)

    # 1. Fresh plain agents, one per regime, cached across methods.
    plain = dataclasses.replace(preset, method="none")
    fresh: dict[int, float] = {}
    started = time.perf_counter()
    for k in [] if args.no_fresh else range(regimes):
        path = fresh_dir / f"{fresh_key(preset, seed, k, ce, args.tail)}.json"
        if path.is_file():
            fresh[k] = json.loads(path.read_text())["regime_return"]
            continue
        value = fresh_regime_return(
            lambda env: build_model("ppo", plain, env, seed=seed, device="cpu"), env_at, k, ce, args.tail
        )
        write_json(path, {"regime": k, "seed": seed, "regime_return": value, "env": preset.env})
        fresh[k] = value
        print(f"fresh agent, regime {k}: {value:.1f}", flush=True)
    fresh_seconds = time.perf_counter() - started

    # 2. The continuing agent.
    env = env_at(0)
    model = build_model("ppo", preset, env, seed=seed, device="cpu")
    model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))
    returns = RegimeReturnCallback(ce, args.tail, fresh)
    snapshots = RegimeSnapshotCallback(ce)
    checkpoints = RegimeCheckpointCallback(ce, RunDir(run_dir))
    callbacks = [returns, snapshots, checkpoints, RegimeLoggerCallback(), TaskChangeCallback(preset.change_reset)]
    started = time.perf_counter()
    model.learn(regimes * ce, callback=callbacks)
    seconds = time.perf_counter() - started

    rows = []
    for k in range(regimes):
        value = returns.returns.get(k, float("nan"))
        rows.append(
            {
                "regime": k,
                "regime_return": value,
                "fresh_return": fresh.get(k),
                "figure": value - fresh[k] if k in fresh else None,
                **{key: v for key, v in snapshots.snapshots.get(k, {}).items()},
            }
        )
    results = {
        "done": True,
        "preset": dataclasses.asdict(preset),
        "preset_name": args.preset,
        "seed": seed,
        "change_every": ce,
        "regimes": regimes,
        "tail": args.tail,
        "steps_per_second": regimes * ce / seconds,
        "seconds": seconds,
        "fresh_seconds": fresh_seconds,
        "rows": rows,
    }
    write_json(run_dir / RESULTS, results)
    figure = [r["figure"] for r in rows if r["figure"] is not None]
    print(
        f"done: {regimes} regimes of {ce:,} steps in {seconds / 60:.1f} min ({regimes * ce / seconds:,.0f} steps/s); "
        "regime returns " + " ".join(f"{r['regime_return']:.0f}" for r in rows)
    )
    if figure:
        print(f"plasticity figure (continuing - fresh) per regime: {' '.join(f'{v:.0f}' for v in figure)}")
    print(f"results: {run_dir / RESULTS}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
