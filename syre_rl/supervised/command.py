"""The supervised run kind's command line (``scripts/train_supervised.py``, ``python -m syre_rl supervised``):
train one of the paper's supervised experiments; every member (method x sweep value x seed) in one batched model.

    python scripts/train_supervised.py --experiment permuted-mnist --run-dir runs/pmnist
    python scripts/train_supervised.py --experiment teacher-student --syre --sigma0 0.1 --weight-decay 0.01
    python scripts/train_supervised.py --experiment mnist-fcn-wd --preset quick --seeds 3 --run-dir runs/wd --force
    python scripts/train_supervised.py --experiment permuted-mnist --device cuda --step graph

Presets are ``experiments/<name>.yaml``; command-line options override their fields. The run itself is
:func:`syre_rl.supervised.train.train`. Bad input (unknown experiment or preset, invalid numbers, missing data,
a run directory in use, a corrupt checkpoint) prints one line on stderr and exits with status 2, changing
nothing; a diverging run stops with status 3; Ctrl-C exits with status 130 and says how to resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from syre_rl import runs
from syre_rl.cli import (
    EXIT_INTERRUPTED,
    OneLineParser,
    UsageError,
    fail,
    finite_float,
    member_count,
    name_list,
    non_negative_int,
    path_arg,
    positive_int,
    seed_int,
)
from syre_rl.lifecycle import run_command
from syre_rl.presets import PresetError, build_preset, load_preset, preset_dir, runs_root
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.step import STEP_MODES
from syre_rl.supervised.train import train

PROG = "train_supervised.py"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n")[0], renamed={"--gamma": "--weight-decay"})
    p.add_argument("--experiment", required=True, help=f"one of: {', '.join(EXPERIMENTS)}")
    p.add_argument("--preset", default="default", help="preset name in experiments/<experiment>.yaml")
    p.add_argument("--run-dir", type=path_arg, default=None, help="default: runs/<experiment>")
    p.add_argument(
        "--data-dir",
        type=path_arg,
        default=None,
        help="torchvision-style data root (default: $SYRE_RL_DATA, else the per-user cache folder)",
    )
    p.add_argument(
        "--download", action="store_true", help="fetch missing datasets into the data root (checked, atomic)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument(
        "--step",
        choices=STEP_MODES,
        default="eager",
        help="graph: capture each stage's training step as a CUDA graph and replay it (fast on GPUs)",
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    start.add_argument("--force", action="store_true", help="start over in a --run-dir that holds a run")
    group = p.add_argument_group("overrides of preset fields")
    group.add_argument("--syre", action="store_true", help="train syre members only (methods: [syre])")
    group.add_argument(
        "--methods", type=name_list, help="comma-separated, any mix, e.g. none,l2,syre,cbp,redo"
    )
    group.add_argument(
        "--weight-decay",
        dest="gamma",
        type=finite_float,
        help="decay strength of l2 and syre (replaces the preset's weight_decay sweep)",
    )
    group.add_argument("--sigma0", type=finite_float, help="anchor scale of syre (replaces the sigma0 sweep)")
    group.add_argument("--seeds", type=member_count, help="members per setting (at most 10,000)")
    group.add_argument("--seed", type=seed_int, help="first seed")
    group.add_argument("--epochs", type=positive_int, help="epochs (per task for permuted-mnist)")
    group.add_argument("--tasks", type=positive_int, help="permuted-mnist: number of tasks")
    group.add_argument("--batch-size", type=positive_int)
    group.add_argument("--lr", type=finite_float)
    group.add_argument(
        "--train-size", type=non_negative_int, help="use the first N training examples (0: all)"
    )
    return p.parse_args(argv)


def build_config(args: argparse.Namespace):
    """The preset, with the command line's overrides, validated by the same schema."""
    experiment = EXPERIMENTS[args.experiment]
    path = preset_dir("experiments") / f"{args.experiment}.yaml"
    cfg = load_preset(path, args.preset, experiment.schema)
    overrides = {
        "methods": ["syre"] if args.syre else args.methods,
        "weight_decay": [args.gamma] if args.gamma is not None else None,
        "sigma0": [args.sigma0] if args.sigma0 is not None else None,
        "seeds": args.seeds,
        "seed": args.seed,
        "epochs": args.epochs,
        "tasks": args.tasks,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "train_size": args.train_size,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in dataclasses.fields(cfg)}
    if "tasks" in overrides and "tasks" not in known:
        raise PresetError(f"--tasks applies to permuted-mnist only, not {args.experiment}")
    return build_preset(
        experiment.schema,
        {**dataclasses.asdict(cfg), **overrides},
        f"{path.name}:{args.preset} + command line",
    )


def check(args: argparse.Namespace) -> None:
    """Every test of the command line that can fail before training (the sweep checks its runs with this)."""
    if args.experiment not in EXPERIMENTS:
        raise UsageError(f"unknown experiment {args.experiment!r}; choose one of: {', '.join(EXPERIMENTS)}")
    if not args.resume:
        build_config(args)


def run(args: argparse.Namespace) -> int:
    run_dir = args.run_dir or runs_root() / args.experiment
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        train(EXPERIMENTS[args.experiment], build_config(args), run_dir=run_dir, device=args.device,
              data_dir=args.data_dir, download=args.download, resume=args.resume, force=args.force,
              preset=args.preset, step=args.step)  # fmt: skip
    except KeyboardInterrupt:
        checkpoint = run_dir / runs.SUPERVISED_CHECKPOINT
        if not checkpoint.is_file():
            fail(PROG, "interrupted before the first checkpoint; nothing to resume", EXIT_INTERRUPTED)
        command = f"python -m syre_rl supervised --experiment {args.experiment} --preset {args.preset}"
        print(f"interrupted; the last checkpoint is {checkpoint}", file=sys.stderr)
        print(f"continue with: {command} (same options) --run-dir {run_dir} --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(sys.modules[__name__], argv)  # type: ignore[arg-type]
