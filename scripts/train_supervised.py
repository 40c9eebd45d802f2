"""Train one of the paper's supervised experiments; every member (method x sweep value x seed) in one batched model.

    python scripts/train_supervised.py --experiment permuted-mnist --run-dir runs/pmnist
    python scripts/train_supervised.py --experiment teacher-student --syre --sigma0 0.1 --gamma 0.01
    python scripts/train_supervised.py --experiment mnist-fcn-wd --preset quick --seeds 3 --run-dir runs/wd --force
    python scripts/train_supervised.py --experiment permuted-mnist --device cuda --step graph

Presets are ``experiments/<name>.yaml``; command-line options override their fields. Bad input (unknown
experiment or preset, invalid numbers, missing data, a run directory in use, a corrupt checkpoint) prints one
line on stderr and exits with status 2, changing nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from syre_rl.presets import PROJECT_ROOT, PresetError, build_preset, load_preset
from syre_rl.supervised.data import DataError, default_data_dir
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.train import STEP_MODES, CheckpointError, RunDirError, train


class OneLineParser(argparse.ArgumentParser):
    """Report a bad option as one line on stderr, exit status 2 (argparse adds a usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see --help)\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiment", required=True, help=f"one of: {', '.join(EXPERIMENTS)}")
    p.add_argument("--preset", default="default", help="preset name in experiments/<experiment>.yaml")
    p.add_argument("--run-dir", type=Path, default=None, help="default: runs/<experiment>")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"torchvision-style data root (default {default_data_dir()})",
    )
    p.add_argument(
        "--download", action="store_true", help="fetch missing datasets with torchvision (needs internet)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--step",
        choices=STEP_MODES,
        default="eager",
        help="graph: capture each stage's training step as a CUDA graph and replay it (fast on GPUs)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its checkpoint")
    p.add_argument("--force", action="store_true", help="start over in a --run-dir that holds a run")
    group = p.add_argument_group("overrides of preset fields")
    group.add_argument("--syre", action="store_true", help="train syre members only (methods: [syre])")
    group.add_argument(
        "--methods", type=lambda s: s.split(","), help="comma-separated, any mix, e.g. none,l2,syre,cbp,redo"
    )
    group.add_argument(
        "--gamma", type=float, help="decay strength of l2 and syre (replaces the weight_decay sweep)"
    )
    group.add_argument("--sigma0", type=float, help="anchor scale of syre (replaces the sigma0 sweep)")
    group.add_argument("--seeds", type=int, help="members per setting")
    group.add_argument("--seed", type=int, help="first seed")
    group.add_argument("--epochs", type=int, help="epochs (per task for permuted-mnist)")
    group.add_argument("--tasks", type=int, help="permuted-mnist: number of tasks")
    group.add_argument("--batch-size", type=int)
    group.add_argument("--lr", type=float)
    group.add_argument("--train-size", type=int, help="use the first N training examples (0: all)")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace):
    """The preset, with the command line's overrides, validated by the same schema."""
    experiment = EXPERIMENTS[args.experiment]
    path = PROJECT_ROOT / "experiments" / f"{args.experiment}.yaml"
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.experiment not in EXPERIMENTS:
            raise PresetError(
                f"unknown experiment {args.experiment!r}; choose one of: {', '.join(EXPERIMENTS)}"
            )
        if args.threads is not None:
            if args.threads < 1:
                raise PresetError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
        cfg = build_config(args)
        run_dir = args.run_dir or PROJECT_ROOT / "runs" / args.experiment
        train(
            EXPERIMENTS[args.experiment],
            cfg,
            run_dir=run_dir,
            device=args.device,
            data_dir=args.data_dir,
            download=args.download,
            resume=args.resume,
            force=args.force,
            preset=args.preset,
            step=args.step,
        )
    except (PresetError, DataError, RunDirError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
