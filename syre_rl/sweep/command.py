"""The sweep's command line (``scripts/sweep.py``, ``python -m syre_rl sweep``): run a grid of training runs (methods x tasks x hyperparameters x seeds) here or on a Ray cluster.

    python scripts/sweep.py --list                                   # the grids in grids/*.yaml
    python scripts/sweep.py rl:slippery-ant-study --dry-run          # what would run
    python scripts/sweep.py rl:slippery-ant-study --jobs 2           # run it here, two at a time
    python scripts/sweep.py rl:slippery-ant-study --address HEAD:6379   # one Ray task per run
    python scripts/sweep.py rl:smoke -- --total-timesteps 512        # flags after -- go to every run
    python scripts/plot.py runs/sweeps/rl-slippery-ant-study         # figures of the sweep

Every run writes runs/sweeps/<grid>/<run-id>/ (the training script's own run directory) and its output to
runs/sweeps/<grid>/logs/<run-id>.log. Running a sweep again skips finished runs and resumes interrupted ones
from their checkpoints; Ctrl-C stops it cleanly (each run saves a checkpoint). Exit status: 0 when every run
finished, 1 when some failed, 2 for bad input (one line on stderr), 130 when interrupted. Every run's arguments
(the grid's tasks, the flags after --) are checked before any run starts. The sweep itself is
:func:`syre_rl.sweep.run.run_sweep`.
"""

from __future__ import annotations

import argparse
import sys

from syre_rl.cli import (
    EXIT_FAILED,
    OneLineParser,
    UsageError,
    check_writable,
    fail,
    name_list,
    non_negative_int,
    path_arg,
    positive_int,
    seed_int,
)
from syre_rl.lifecycle import TRAINING, run_command
from syre_rl.presets import runs_root
from syre_rl.sweep.grid import GridPreset, check_manifest, expand, grid_names, load_grid

PROG = "sweep.py"


def int_list(text: str) -> list[int]:
    try:
        return [seed_int(v) for v in text.split(",")]
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {err}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("grid", nargs="?", help="FILE:PRESET of grids/FILE.yaml, e.g. rl:slippery-ant-study")
    p.add_argument("--list", action="store_true", help="list the grids and exit")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state; run nothing")
    p.add_argument("--sweep-dir", type=path_arg, help="default: runs/sweeps/<FILE>-<PRESET>")
    p.add_argument("--seeds", type=int_list, help="replace the grid's seeds, e.g. 0,1,2")
    p.add_argument("--methods", type=name_list, help="only these method labels, e.g. ppo,ppo-syre")
    p.add_argument("--tasks", type=name_list, help="replace the grid's tasks")
    p.add_argument(
        "--jobs", type=positive_int, help="runs at a time on this machine (default: cores / cpus_per_run)"
    )
    p.add_argument("--address", help="Ray cluster address (HOST:PORT or auto): run there, one task per run")
    p.add_argument(
        "--max-retries", type=non_negative_int, help="restarts of a run that dies (default: the grid's)"
    )
    args = p.parse_args(argv)
    if not args.list and not args.grid:
        p.error("give a grid (FILE:PRESET) or --list")
    args.extra = extra
    return args


def _grid(args: argparse.Namespace) -> GridPreset:
    """The grid with the command line's choices of methods, seeds and tasks (checked by its schema)."""
    grid = load_grid(args.grid)
    if args.methods:
        unknown = [m for m in args.methods if m not in grid.methods]
        if unknown:
            raise UsageError(f"--methods: {', '.join(unknown)} not in the grid ({', '.join(grid.methods)})")
        grid.methods = {m: grid.methods[m] for m in args.methods}
    grid.seeds = args.seeds or grid.seeds
    grid.tasks = args.tasks or grid.tasks
    try:
        grid.__post_init__()  # the overrides obey the schema's rules too
    except ValueError as err:
        raise UsageError(str(err)) from None
    return grid


def check(args: argparse.Namespace) -> None:
    """Every test a sweep makes before it starts, for a real run and a dry run alike: the grid, every run's
    arguments (each run's own check) and the cluster's library."""
    if args.list:
        return
    from syre_rl.sweep.ray_cluster import check_address  # noqa: PLC0415  (Ray itself: lazily)
    from syre_rl.sweep.run import check_runs  # noqa: PLC0415

    args.grid_preset = _grid(args)
    args.sweep_dir = (args.sweep_dir or runs_root() / "sweeps" / args.grid.replace(":", "-")).resolve()
    args.runs = expand(args.grid_preset, args.sweep_dir, args.extra)
    if args.address:
        check_address(args.address)  # reachable in seconds, before anything is created
    check_runs(args.runs)
    check_writable(args.sweep_dir, "sweep directory")
    check_manifest(args.sweep_dir, args.runs)  # a dry run refuses what the real run refuses, writing nothing


def run(args: argparse.Namespace) -> int:
    from syre_rl.sweep.ray_cluster import ClusterError  # noqa: PLC0415
    from syre_rl.sweep.run import run_sweep  # noqa: PLC0415

    if args.list:
        for name in grid_names():
            print(f"{name}: {load_grid(name).description}")
        return 0
    if args.dry_run:
        states = {run.id: run.state() for run in args.runs}
        for run in args.runs:
            print(f"{states[run.id]:9} {run.id}: {' '.join(run.command('python')[1:])}")
        finished = sum(s == "finished" for s in states.values())
        print(f"{len(args.runs)} runs, {finished} finished; sweep dir {args.sweep_dir}")
        return 0
    try:
        result = run_sweep(args.grid, args.grid_preset, args.runs, args.sweep_dir, jobs=args.jobs,
                           address=args.address, max_retries=args.max_retries)  # fmt: skip
    except ClusterError as err:
        fail(PROG, str(err), EXIT_FAILED)
    print(f"report: python -m syre_rl {TRAINING[args.grid_preset.script].report} {args.sweep_dir}")
    return result.exit_code


def main(argv: list[str] | None = None) -> int:
    return run_command(sys.modules[__name__], argv)  # type: ignore[arg-type]
