"""Run a grid of training runs (methods x tasks x hyperparameters x seeds) here or on a Ray cluster.

    python scripts/sweep.py --list                                   # the grids in grids/*.yaml
    python scripts/sweep.py rl:slippery-ant-study --dry-run          # what would run
    python scripts/sweep.py rl:slippery-ant-study --jobs 2           # run it here, two at a time
    python scripts/sweep.py rl:slippery-ant-study --address HEAD:6379   # one Ray task per run
    python scripts/sweep.py rl:smoke -- --total-timesteps 512        # flags after -- go to every run
    python scripts/plot.py runs/sweeps/rl-slippery-ant-study         # figures of the sweep

Every run writes runs/sweeps/<grid>/<run-id>/ (the training script's own run directory) and its output to
runs/sweeps/<grid>/logs/<run-id>.log. Running a sweep again skips finished runs and resumes interrupted ones
from their checkpoints; Ctrl-C stops it cleanly (each run saves a checkpoint). Exit status: 0 when every run
finished, 1 when some failed, 2 for bad input (one line on stderr), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
from pathlib import Path
from typing import NoReturn

from syre_rl.presets import PROJECT_ROOT, PresetError
from syre_rl.sweep.grid import expand, grid_names, load_grid, write_manifest
from syre_rl.sweep.local import run_local
from syre_rl.sweep.progress import Progress

PROG = "sweep.py"
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("grid", nargs="?", help="FILE:PRESET of grids/FILE.yaml, e.g. rl:slippery-ant-study")
    p.add_argument("--list", action="store_true", help="list the grids and exit")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state; run nothing")
    p.add_argument("--sweep-dir", type=Path, help="default: runs/sweeps/<FILE>-<PRESET>")
    p.add_argument("--seeds", type=int_list, help="replace the grid's seeds, e.g. 0,1,2")
    p.add_argument(
        "--methods", type=lambda s: s.split(","), help="only these method labels, e.g. ppo,ppo-syre"
    )
    p.add_argument("--tasks", type=lambda s: s.split(","), help="replace the grid's tasks")
    p.add_argument("--jobs", type=int, help="runs at a time on this machine (default: cores / cpus_per_run)")
    p.add_argument("--address", help="Ray cluster address (HOST:PORT or auto): run there, one task per run")
    p.add_argument("--max-retries", type=int, help="restarts of a run that dies (default: the grid's)")
    args = p.parse_args(argv)
    if not args.list and not args.grid:
        p.error("give a grid (FILE:PRESET) or --list")
    if args.jobs is not None and args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.max_retries is not None and args.max_retries < 0:
        p.error(f"--max-retries must be >= 0, got {args.max_retries}")
    return args, extra


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    if args.list:
        try:
            for name in grid_names():
                print(f"{name}: {load_grid(name).description}")
        except PresetError as err:
            fail(str(err))
        return 0
    try:
        grid = load_grid(args.grid)
        if args.methods:
            unknown = [m for m in args.methods if m not in grid.methods]
            if unknown:
                raise PresetError(
                    f"--methods: {', '.join(unknown)} not in the grid ({', '.join(grid.methods)})"
                )
            grid.methods = {m: grid.methods[m] for m in args.methods}
        grid.seeds = args.seeds or grid.seeds
        grid.tasks = args.tasks or grid.tasks
        grid.__post_init__()  # the overrides obey the schema's rules too
        sweep_dir = (
            args.sweep_dir or PROJECT_ROOT / "runs" / "sweeps" / args.grid.replace(":", "-")
        ).resolve()
        runs = expand(grid, sweep_dir, extra)
        if args.address:
            from syre_rl.sweep.ray_cluster import import_ray  # noqa: PLC0415  (Ray is an optional extra)

            import_ray()
    except (PresetError, ValueError) as err:
        fail(str(err))

    if args.dry_run:
        states = {run.id: run.state() for run in runs}
        for run in runs:
            print(f"{states[run.id]:9} {run.id}: {' '.join(run.command('python')[1:])}")
        print(
            f"{len(runs)} runs, {sum(s == 'finished' for s in states.values())} finished; sweep dir {sweep_dir}"
        )
        return 0
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = open(sweep_dir / ".lock", "w")  # held until exit: one sweep at a time per directory
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fail(f"{sweep_dir} is in use by another sweep")
    try:
        write_manifest(sweep_dir, args.grid, grid, runs)
    except PresetError as err:
        fail(str(err))

    todo = [run for run in runs if run.state() != "finished"]  # read under the lock
    done = len(runs) - len(todo)
    max_retries = grid.max_retries if args.max_retries is None else args.max_retries
    log_dir = sweep_dir / "logs"
    progress = Progress(len(runs))
    progress.event(f"sweep {args.grid}: {len(runs)} runs, {done} finished before, in {sweep_dir}")
    try:
        if args.address:
            from syre_rl.sweep.ray_cluster import run_on_ray  # noqa: PLC0415  (Ray is an optional extra)

            outcomes = run_on_ray(
                todo,
                address=args.address,
                cpus_per_run=grid.cpus_per_run,
                gpus_per_run=grid.gpus_per_run,
                max_retries=max_retries,
                log_dir=log_dir,
                progress=progress,
                done_before=done,
            )
        else:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            outcomes = run_local(
                todo,
                jobs=args.jobs or max(1, int(cores // grid.cpus_per_run)),
                max_retries=max_retries,
                log_dir=log_dir,
                progress=progress,
                threads=max(1, int(grid.cpus_per_run)),
                done_before=done,
            )
    except PresetError as err:
        progress.close()
        fail(str(err))
    failed = [run_id for run_id, outcome in outcomes.items() if outcome == "failed"]
    interrupted = [run_id for run_id, outcome in outcomes.items() if outcome == "interrupted"]
    progress.event(
        f"sweep {args.grid}: {done + len(todo) - len(failed) - len(interrupted)}/{len(runs)} finished, "
        f"{len(failed)} failed, {len(interrupted)} interrupted; logs in {log_dir}"
    )
    progress.close()
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
