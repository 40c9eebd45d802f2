"""A sweep from start to end: check every run's arguments, lock the sweep directory, record ``sweep.json``,
run what is not finished (here or on Ray) and count the outcomes. ``scripts/sweep.py`` is its command line."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from syre_rl.cli import EXIT_FAILED, EXIT_INTERRUPTED, UsageError, check_writable
from syre_rl.sweep.grid import GridPreset, Run, check_manifest, write_manifest
from syre_rl.sweep.local import run_local
from syre_rl.sweep.progress import Progress

__all__ = ["SweepResult", "check_runs", "lock_sweep_dir", "run_sweep"]


@dataclass
class SweepResult:
    """Outcome counts of one sweep call; :attr:`exit_code` is the command line's status."""

    total: int
    done_before: int
    failed: list[str]
    interrupted: list[str]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.failed else 0


def check_runs(runs: list[Run]) -> None:
    """Validate every run's command line with its command's ``check`` before any run starts.

    A grid task or a flag after ``--`` that the command would refuse is reported here, as one
    :class:`UsageError` naming the run, instead of as a failure of every run.
    """
    for run in runs:
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                run.training.check_argv([*run.args, run.training.run_dir_flag, str(run.run_dir)])
        except SystemExit:  # argparse's one line, already on the captured stderr
            message = (
                stderr.getvalue().strip().splitlines()[-1] if stderr.getvalue().strip() else "bad arguments"
            )
            raise UsageError(f"run {run.id}: {message.split('error: ', 1)[-1]}") from None
        except UsageError as err:
            raise UsageError(f"run {run.id}: {err}") from None


def lock_sweep_dir(sweep_dir: Path) -> IO[str]:
    """Create ``sweep_dir`` and hold its lock (one sweep at a time per directory) until the file is closed."""
    check_writable(sweep_dir, "sweep directory")
    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = open(sweep_dir / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise UsageError(f"{sweep_dir} is in use by another sweep") from None
    return lock


def run_sweep(
    name: str,
    grid: GridPreset,
    runs: list[Run],
    sweep_dir: Path,
    *,
    jobs: int | None = None,
    address: str | None = None,
    max_retries: int | None = None,
) -> SweepResult:
    """Run the unfinished ``runs`` of ``grid`` in ``sweep_dir``: locally ``jobs`` at a time, or on the Ray
    cluster at ``address``. Finished runs are skipped, interrupted ones resume from their checkpoints.

    raises UsageError or PresetError when the directory is in use or holds other runs under these ids
    """
    check_manifest(sweep_dir, runs)  # before the lock file: a refused sweep writes nothing
    lock = lock_sweep_dir(sweep_dir)
    try:
        write_manifest(sweep_dir, name, grid, runs)
        todo = [run for run in runs if run.state() != "finished"]  # read under the lock
        done = len(runs) - len(todo)
        retries = grid.max_retries if max_retries is None else max_retries
        log_dir = sweep_dir / "logs"
        progress = Progress(len(runs))
        progress.event(f"sweep {name}: {len(runs)} runs, {done} finished before, in {sweep_dir}")
        try:
            if address:
                from syre_rl.sweep.ray_cluster import run_on_ray  # noqa: PLC0415  (Ray is an optional extra)

                outcomes = run_on_ray(
                    todo,
                    address=address,
                    cpus_per_run=grid.cpus_per_run,
                    gpus_per_run=grid.gpus_per_run,
                    max_retries=retries,
                    log_dir=log_dir,
                    progress=progress,
                    done_before=done,
                )
            else:
                cores = (
                    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
                )
                outcomes = run_local(
                    todo,
                    jobs=jobs or max(1, int(cores // grid.cpus_per_run)),
                    max_retries=retries,
                    log_dir=log_dir,
                    progress=progress,
                    threads=max(1, int(grid.cpus_per_run)),
                    done_before=done,
                )
        except BaseException:
            progress.close()
            raise
        failed = [run_id for run_id, outcome in outcomes.items() if outcome == "failed"]
        interrupted = [run_id for run_id, outcome in outcomes.items() if outcome == "interrupted"]
        result = SweepResult(len(runs), done, failed, interrupted)
        progress.event(
            f"sweep {name}: {done + len(todo) - len(failed) - len(interrupted)}/{len(runs)} finished, "
            f"{len(failed)} failed, {len(interrupted)} interrupted; logs in {log_dir}"
        )
        progress.close()
        return result
    finally:
        lock.close()
