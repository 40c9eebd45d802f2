"""Train PPO (or A2C / SAC) with Stable-Baselines3 on a PyBullet task, with or without syre.

    python scripts/train_ppo.py --syre                          # the main job: ~10 minutes on a 2-core CPU
    python scripts/train_ppo.py --preset syre-paper --syre --env slippery_ant:study
    python scripts/train_ppo.py --syre --run-dir runs/a --resume   # continue after Ctrl-C
    tensorboard --logdir runs

Settings come from a preset of ``agents/<algo>.yaml``; flags override single fields. Everything the run
writes lives in its run directory (see ``syre_rl/rl/run_dir.py``). Ctrl-C stops at the next environment step,
saves a checkpoint and exits with status 130; ``--resume`` continues it (steps, anchors, TensorBoard curve).
Bad input gets one line on stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
from stable_baselines3.common.logger import configure

from syre_rl.envs import RegimeLoggerCallback, resolve_env
from syre_rl.plasticity.callback import PlasticityCallback
from syre_rl.presets import PROJECT_ROOT, PresetError, build_preset
from syre_rl.rl.agents import AGENT_SCHEMAS, AgentPreset, agent_preset_names, load_agent_preset
from syre_rl.rl.callbacks import (
    CheckpointCallback,
    RegimeSyncedEvalCallback,
    StopOnSignalCallback,
    SyreSummaryCallback,
    TaskChangeCallback,
)
from syre_rl.rl.methods import POLICY_CHOICES
from syre_rl.rl.model import ALGORITHMS, build_model, make_env
from syre_rl.rl.run_dir import CheckpointError, RunDir, load_checkpoint, restore_normalization

PROG = "train_ppo.py"
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # the shell's code for "stopped by SIGINT"


class UsageError(ValueError):
    """Bad input the user can fix; reported as one line with exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage block), like every other bad input here."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    try:
        value = int(float(text)) if "e" in text.lower() else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--algo", choices=sorted(ALGORITHMS), default="ppo", help="agents/<algo>.yaml (default ppo)"
    )
    parser.add_argument("--preset", default="default", help="preset of agents/<algo>.yaml (default: default)")
    parser.add_argument(
        "--env", help="gymnasium id or task preset, e.g. slippery_ant:study (default: the preset's)"
    )
    method = parser.add_mutually_exclusive_group()
    for name, build in POLICY_CHOICES.items():  # one flag per plasticity method: --syre, ...
        if name != "none":
            flag = f"--{name.replace('_', '-')}"
            method.add_argument(flag, dest="method", action="store_const", const=name, help=build.__doc__)
    syre = parser.add_argument_group("syre settings (override the preset's syre_* fields)")
    syre.add_argument("--sigma0", type=float, help="anchor scale: std sigma0/sqrt(fan_in)")
    syre.add_argument(
        "--gamma", type=float, help="syre's decay strength toward the anchors (not the discount)"
    )
    syre.add_argument("--spread", type=float, help="spread of the random diagonal D, in [0, 1)")
    syre.add_argument(
        "--mode", choices=["coupled", "decoupled"], help="like Adam's weight_decay or like AdamW"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--total-timesteps", type=positive_int, help="environment steps (default: the preset's)"
    )
    parser.add_argument(
        "--n-envs", type=positive_int, help="environments in lockstep (default: the preset's)"
    )
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda or auto (default cpu)")
    parser.add_argument("--run-dir", type=Path, help="default: runs/<algo>-<env>-<preset>-<method>-s<seed>")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint"
    )
    start.add_argument(
        "--force", action="store_true", help="delete an existing run directory and start afresh"
    )
    return parser.parse_args(argv)


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def preset_from_args(args: argparse.Namespace) -> AgentPreset:
    """The agent preset with the command line's overrides applied (validated again by the schema)."""
    names = agent_preset_names(args.algo)
    if args.preset not in names:
        raise UsageError(f"unknown preset {args.preset!r} for {args.algo}; choose one of: {', '.join(names)}")
    preset = load_agent_preset(args.algo, args.preset)
    overrides = {
        "env": args.env,
        "total_timesteps": args.total_timesteps,
        "n_envs": args.n_envs,
        "method": args.method,
        "syre_sigma0": args.sigma0,
        "syre_gamma": args.gamma,
        "syre_spread": args.spread,
        "syre_mode": args.mode,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    syre_flags = [k for k in overrides if k.startswith("syre_")]
    if syre_flags and overrides.get("method", preset.method) != "syre":
        raise UsageError(
            f"--{syre_flags[0].removeprefix('syre_')} needs --syre (or a preset with method: syre)"
        )
    try:
        preset = dataclasses.replace(preset, **overrides)
    except ValueError as err:
        raise UsageError(f"agents/{args.algo}.yaml:{args.preset} with flags: {err}") from None
    resolve_env(preset.env)  # ValueError naming the choices if the env is unknown
    return preset


def default_run_dir(args: argparse.Namespace, preset: AgentPreset) -> Path:
    env = preset.env.replace(":", "-").replace("/", "-")
    return PROJECT_ROOT / "runs" / f"{args.algo}-{env}-{args.preset}-{preset.method}-s{args.seed}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)  # small MLPs gain nothing from intra-op threads; the env steps serially anyway

    # 1. Settings: a fresh run reads the preset (+ flags); a resumed run reads its own config.json.
    try:
        preset = preset_from_args(args)
        run = RunDir(args.run_dir or default_run_dir(args, preset))
        if args.resume:
            config = run.read_config()
            if config["algo"] not in AGENT_SCHEMAS:
                raise UsageError(f"{run.config_file}: unknown algo {config['algo']!r}")
            preset = build_preset(AGENT_SCHEMAS[config["algo"]], config["preset"], str(run.config_file))
            if args.total_timesteps is not None:
                preset = dataclasses.replace(preset, total_timesteps=args.total_timesteps)
            algo, seed, preset_name = config["algo"], config["seed"], config["preset_name"]
            checkpoint = run.latest_checkpoint()
        else:
            algo, seed, preset_name = args.algo, args.seed, args.preset
            if run.path.exists() and not args.force:
                raise UsageError(
                    f"run directory {run.path} exists; pass --resume to continue it or --force to replace it"
                )
            if args.force and run.path.exists() and not run.is_run() and any(run.path.iterdir()):
                raise UsageError(f"--force deletes only run directories; {run.path} has no config.json")
    except (PresetError, UsageError, CheckpointError, ValueError) as err:
        fail(str(err))

    # 2. Environments and model: a resumed run loads its checkpoint before writing anything.
    algo_class = ALGORITHMS[algo]
    if args.resume:
        start_step = int(checkpoint.name.removeprefix("step_"))
        if start_step >= preset.total_timesteps:
            fail(
                f"{run.path} is at step {start_step:,} of {preset.total_timesteps:,}; pass a larger --total-timesteps"
            )
        probe = make_env(preset, n_envs=preset.n_envs, seed=seed, start_step=start_step)  # writes no files
        try:
            model = load_checkpoint(algo_class, checkpoint, probe, args.device)
        except CheckpointError as err:
            fail(str(err))
        finally:
            probe.close()
        env = make_env(
            preset,
            n_envs=preset.n_envs,
            seed=seed,
            start_step=start_step,
            monitor_dir=run.monitor_dir(start_step),
        )
        model.set_env(restore_normalization(checkpoint, env))
        model.set_random_seed(seed + start_step)  # fresh, reproducible randomness for the continuation
        print(f"resuming {run.path} at step {start_step:,} of {preset.total_timesteps:,} ({checkpoint.name})")
    else:
        if args.force and run.path.exists():
            shutil.rmtree(run.path)
        run.write_config(
            {"algo": algo, "preset_name": preset_name, "seed": seed, "preset": dataclasses.asdict(preset)}
        )
        start_step = 0
        env = make_env(preset, n_envs=preset.n_envs, seed=seed, monitor_dir=run.monitor_dir(0))
        model = build_model(algo, preset, env, seed=seed, device=args.device)
        print(
            f"training {algo} ({preset_name}, method {preset.method}) on {preset.env} for "
            f"{preset.total_timesteps:,} steps into {run.path}"
        )
    model.set_logger(configure(str(run.tb_dir), ["tensorboard"]))

    # 3. Callbacks: anchors summary, regime of a non-stationary task, plasticity measurements, evaluation,
    #    checkpoints, Ctrl-C.
    stop = StopOnSignalCallback()
    callbacks = [
        SyreSummaryCallback(),
        RegimeLoggerCallback(),
        TaskChangeCallback(),  # methods that act at regime changes (Shrink & Perturb's boundary form)
        CheckpointCallback(run, preset.checkpoint_freq),
        stop,
    ]
    if preset.plasticity_every > 0:
        callbacks.append(PlasticityCallback(every_n_steps=preset.plasticity_every))
    evaluation = None
    if preset.eval_freq > 0:
        eval_env = make_env(preset, n_envs=1, seed=seed + 10_000, start_step=start_step, training=False)
        evaluation = RegimeSyncedEvalCallback(
            eval_env,
            n_eval_episodes=preset.eval_episodes,
            eval_freq=max(preset.eval_freq // preset.n_envs, 1),
            verbose=1,
        )
        callbacks.append(evaluation)

    # 4. Train. reset_num_timesteps=False continues the step count (and the TensorBoard curve) of a resumed run.
    started = time.perf_counter()
    model.learn(
        preset.total_timesteps - start_step,
        callback=callbacks,
        reset_num_timesteps=not args.resume,
        progress_bar=True,
    )
    wall = time.perf_counter() - started

    # 5. Save and summarise.
    steps = model.num_timesteps - start_step
    if stop.received is not None and model.num_timesteps < preset.total_timesteps:
        saved = run.save_checkpoint(model)
        print(f"interrupted at step {model.num_timesteps:,}; checkpoint {saved}")
        print(f"continue with: python scripts/train_ppo.py --run-dir {run.path} --resume")
        return EXIT_INTERRUPTED
    saved = run.save_checkpoint(model, run.final_dir)
    episodes = [info["r"] for info in model.ep_info_buffer]
    print(
        f"done: {model.num_timesteps:,} steps ({steps:,} now) in {wall / 60:.1f} min, {steps / wall:.0f} steps/s"
    )
    if evaluation is not None and evaluation.n_calls >= evaluation.eval_freq:
        print(
            f"last evaluation: mean return {evaluation.last_mean_reward:.1f} over {preset.eval_episodes} episodes"
        )
    if episodes:
        print(f"last {len(episodes)} training episodes: mean return {np.mean(episodes):.1f}")
    print(f"final model: {saved / 'model.zip'}")
    print(f"logs: tensorboard --logdir {run.tb_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
