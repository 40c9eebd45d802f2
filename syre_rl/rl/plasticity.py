"""The RL-plasticity run kind (``scripts/rl_plasticity.py``, ``python -m syre_rl plasticity``): a continuing PPO
agent against fresh agents, regime by regime.

    python scripts/rl_plasticity.py --preset vec-pendulum --seed 0                 # plain PPO, ~2 CPU-minutes
    python scripts/rl_plasticity.py --preset vec-pendulum --syre --syre-sigma0 1 --seed 0
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
A run is short, so an interrupted one restarts from scratch (``--force``; it replaces only a run of this kind).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syre_rl import runs
from syre_rl.cli import (
    OneLineParser,
    UsageError,
    check_writable,
    finite_float,
    path_arg,
    positive_int,
    seed_int,
)
from syre_rl.core import SyreConfig
from syre_rl.flags import add_dataclass_flags, collect_dataclass_flags
from syre_rl.lifecycle import run_command
from syre_rl.presets import build_preset, runs_root
from syre_rl.rl.callbacks import EpisodeReturnsCallback, regime_return
from syre_rl.rl.config import AgentPreset, agent_preset_names, load_agent_preset, preset_overrides

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv

PROG = "rl_plasticity.py"
KIND = "rl-plasticity"
PRESET_FLAGS = ("env", "activation", "layer_norm", "weight_decay", "adam_betas")  # preset fields with a flag here


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from syre_rl.rl.command import add_method_flags  # noqa: PLC0415

    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="vec-pendulum", help="preset of agents/ppo.yaml (default vec-pendulum)")
    preset = p.add_argument_group("preset fields (over the preset's)")
    add_dataclass_flags(preset, AgentPreset, prefix="", only=PRESET_FLAGS, default="the preset's")
    add_method_flags(p)
    p.add_argument("--method-kwargs", type=json_object,
                   help='settings of the chosen method as JSON, over the preset\'s (e.g. \'{"form": "boundary"}\')')  # fmt: skip
    p.add_argument("--regimes", type=regime_count, help=f"regimes to run, at most {MAX_REGIMES:,} (default: the task's)")
    p.add_argument("--tail", type=finite_float, default=0.25, help="fraction of a regime whose episodes count")
    p.add_argument("--no-fresh", action="store_true", help="skip the fresh agents (no plasticity figure)")
    p.add_argument("--fresh-dir", type=path_arg, help="cache of fresh agents' regime returns")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--run-dir", type=path_arg, help="default: runs/plasticity/<preset>-<env>-<method>-s<seed>")
    p.add_argument("--force", action="store_true", help="replace an existing run of this kind")
    args = p.parse_args(argv)
    if not 0 < args.tail <= 1:
        p.error(f"--tail must be in (0, 1], got {args.tail}")
    return args


MAX_REGIMES = 10_000  # more is a typo: the fresh agents alone would train for weeks


def regime_count(text: str) -> int:
    """argparse type: a number of regimes in [1, MAX_REGIMES]."""
    value = positive_int(text)
    if value > MAX_REGIMES:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_REGIMES:,}, got {text}")
    return value


def json_object(text: str) -> dict[str, Any]:
    """argparse type: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"need a JSON object, got {text!r}")
    return value


def preset_from_args(args: argparse.Namespace) -> AgentPreset:
    """The preset of ``agents/ppo.yaml`` with the command line's fields, validated by its schema."""
    if args.preset not in agent_preset_names("ppo"):
        raise UsageError(f"unknown preset {args.preset!r}; choose one of: {', '.join(agent_preset_names('ppo'))}")
    preset = load_agent_preset("ppo", args.preset)
    overrides = {**preset_overrides(args, PRESET_FLAGS), **({"method": args.method} if args.method else {})}
    method = overrides.get("method", preset.method)
    if args.method_kwargs is not None:
        if method in ("none", "syre"):
            raise UsageError("--method-kwargs needs a competing method (--syre takes --syre-gamma, --syre-sigma0, ...)")
        settings = {**preset.method_kwargs.get(method, {}), **args.method_kwargs}
        overrides["method_kwargs"] = {**preset.method_kwargs, method: settings}
    syre = collect_dataclass_flags(args, SyreConfig)
    if syre and method != "syre":
        raise UsageError(f"--syre-{next(iter(syre)).replace('_', '-')} needs --syre")
    if syre:
        overrides["syre"] = {**preset.syre_kwargs(), **syre}
    return build_preset(type(preset), {**dataclasses.asdict(preset), **overrides}, f"ppo:{args.preset}")


def fresh_regime_return(
    make_model: Callable[[VecEnv], BaseAlgorithm],
    make_env: Callable[[int], VecEnv],
    k: int,
    change_every: int,
    tail: float = 0.25,
) -> float:
    """A freshly built agent's regime return on regime ``k``: its env starts at run step ``k * change_every``
    and it trains ``change_every`` steps (the same window as the continuing agent's regime ``k``).

    :param make_model: env -> a fresh model (the seed and settings of the continuing run)
    :param make_env: start step -> the run's env started there
    """
    env = make_env(k * change_every)
    model = make_model(env)
    callback = EpisodeReturnsCallback(k * change_every)
    model.learn(change_every, callback=callback)
    env.close()
    return regime_return(callback.rows, k, change_every, tail)


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


@dataclass
class Plan:
    """One run of this kind, checked: settings, regimes and where everything goes."""

    preset: AgentPreset
    preset_name: str
    seed: int
    regimes: int
    change_every: int
    tail: float
    run_dir: Path
    fresh_dir: Path | None  # None: no fresh agents

    def env_at(self, start_step: int) -> Any:
        from syre_rl.rl.model import make_env  # noqa: PLC0415

        return make_env(self.preset, n_envs=self.preset.n_envs, seed=self.seed, start_step=start_step)


def plan(args: argparse.Namespace) -> Plan:
    """Every check of the command line; nothing is written."""
    from syre_rl.envs import resolve_env  # noqa: PLC0415

    preset = preset_from_args(args)
    try:
        task = resolve_env(preset.env).task
    except ValueError as err:
        raise UsageError(str(err)) from None
    if task is None:
        raise UsageError(f"{preset.env} is stationary; the plasticity figure needs a continuing task")
    name = f"{args.preset}-{preset.env.replace(':', '-')}-{preset.method}-s{args.seed}"
    run_dir = args.run_dir or runs_root() / "plasticity" / name
    fresh_dir = None if args.no_fresh else args.fresh_dir or run_dir.parent / "fresh"
    return Plan(preset, args.preset, args.seed, args.regimes or task.regimes, task.change_every, args.tail,
                run_dir, fresh_dir)  # fmt: skip


def check(args: argparse.Namespace) -> None:
    """Every test of the command line that can fail before training (the sweep checks its runs with this); the
    checked plan is kept on ``args`` for :func:`run`."""
    checked = args.plan = plan(args)
    check_writable(checked.run_dir, "run directory")
    fresh_dir = args.fresh_dir or checked.fresh_dir  # a given --fresh-dir is checked even with --no-fresh
    if fresh_dir is not None:
        check_writable(fresh_dir, "fresh-agent directory")
    from syre_rl.rl.model import build_model  # noqa: PLC0415

    env = checked.env_at(0)
    try:  # the settings build a model (a method's keyword arguments of the wrong type, ...)
        build_model("ppo", checked.preset, env, seed=checked.seed, device="cpu")
    except (ValueError, TypeError, RuntimeError) as err:
        raise UsageError(f"cannot build the model: {' '.join(str(err).split())[:300]}") from None
    finally:
        env.close()


def fresh_returns(plan: Plan) -> dict[int, float]:
    """Each regime's fresh plain agent's regime return, from the cache or trained now (and cached)."""
    from syre_rl.rl.model import build_model  # noqa: PLC0415

    if plan.fresh_dir is None:
        return {}
    plan.fresh_dir.mkdir(parents=True, exist_ok=True)
    plain = dataclasses.replace(plan.preset, method="none")
    fresh: dict[int, float] = {}
    for k in range(plan.regimes):
        path = plan.fresh_dir / f"{fresh_key(plan.preset, plan.seed, k, plan.change_every, plan.tail)}.json"
        if path.is_file():
            fresh[k] = json.loads(path.read_text())["regime_return"]
            continue
        value = fresh_regime_return(
            lambda env: build_model("ppo", plain, env, seed=plan.seed, device="cpu"),
            plan.env_at, k, plan.change_every, plan.tail,
        )  # fmt: skip
        record = {"regime": k, "seed": plan.seed, "regime_return": value, "env": plan.preset.env}
        runs.write_json(path, record, sort_keys=True)
        fresh[k] = value
        print(f"fresh agent, regime {k}: {value:.1f}", flush=True)
    return fresh


def train_continuing(plan: Plan, fresh: dict[int, float]) -> tuple[list[dict[str, Any]], float]:
    """Train the continuing agent through every regime; its per-regime rows and the wall time."""
    from stable_baselines3.common.logger import configure  # noqa: PLC0415

    from syre_rl.rl.callbacks import (  # noqa: PLC0415
        RegimeCheckpointCallback,
        RegimeLoggerCallback,
        RegimeReturnCallback,
        RegimeSnapshotCallback,
        TaskChangeCallback,
    )
    from syre_rl.rl.model import build_model  # noqa: PLC0415
    from syre_rl.rl.run_dir import RunDir  # noqa: PLC0415

    model = build_model("ppo", plan.preset, plan.env_at(0), seed=plan.seed, device="cpu")
    model.set_logger(configure(str(plan.run_dir / runs.TB), ["tensorboard"]))
    returns = RegimeReturnCallback(plan.change_every, plan.tail, fresh)
    snapshots = RegimeSnapshotCallback(plan.change_every)
    checkpoints = RegimeCheckpointCallback(plan.change_every, RunDir(plan.run_dir))
    callbacks = [returns, snapshots, checkpoints, RegimeLoggerCallback(), TaskChangeCallback(plan.preset.change_reset)]
    started = time.perf_counter()
    model.learn(plan.regimes * plan.change_every, callback=callbacks)
    seconds = time.perf_counter() - started
    rows = []
    for k in range(plan.regimes):
        value = returns.returns.get(k, float("nan"))
        rows.append({
            "regime": k,
            "regime_return": value,
            "fresh_return": fresh.get(k),
            "figure": value - fresh[k] if k in fresh else None,
            **snapshots.snapshots.get(k, {}),
        })  # fmt: skip
    return rows, seconds


def run(args: argparse.Namespace) -> int:
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    np.seterr(all="ignore")
    torch.set_num_threads(1)
    checked: Plan = args.plan  # made by check(), which the lifecycle runs first
    with runs.claim_run(checked.run_dir, KIND, resume=False, force=args.force):
        started = time.perf_counter()
        fresh = fresh_returns(checked)
        fresh_seconds = time.perf_counter() - started
        rows, seconds = train_continuing(checked, fresh)
        steps = checked.regimes * checked.change_every
        results = {
            "done": True,
            "preset": dataclasses.asdict(checked.preset),
            "preset_name": checked.preset_name,
            "seed": checked.seed,
            "change_every": checked.change_every,
            "regimes": checked.regimes,
            "tail": checked.tail,
            "steps_per_second": steps / seconds,
            "seconds": seconds,
            "fresh_seconds": fresh_seconds,
            "rows": rows,
        }
        runs.write_json(checked.run_dir / runs.RESULTS, results, sort_keys=True)
    returns = " ".join(f"{r['regime_return']:.0f}" for r in rows)
    print(f"done: {checked.regimes} regimes of {checked.change_every:,} steps in {seconds / 60:.1f} min "
          f"({steps / seconds:,.0f} steps/s); regime returns {returns}")  # fmt: skip
    figure = [r["figure"] for r in rows if r["figure"] is not None]
    if figure:
        print(f"plasticity figure (continuing - fresh) per regime: {' '.join(f'{v:.0f}' for v in figure)}")
    print(f"results: {checked.run_dir / runs.RESULTS}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(sys.modules[__name__], argv)  # type: ignore[arg-type]
