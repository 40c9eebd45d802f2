"""Run a sweep's runs on this machine, ``jobs`` at a time, starting runs that die again (they resume)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import deque
from pathlib import Path
from types import FrameType

from syre_rl.cli import FINAL_EXITS
from syre_rl.sweep.grid import Run
from syre_rl.sweep.launch import last_line, launch, log_file
from syre_rl.sweep.progress import Progress

__all__ = ["Outcome", "run_local"]

Outcome = str  # "finished", "failed" or "interrupted"
POLL_SECONDS = 0.5


def run_local(
    runs: list[Run],
    *,
    jobs: int,
    max_retries: int,
    log_dir: Path,
    progress: Progress,
    threads: int = 1,
    done_before: int = 0,
) -> dict[str, Outcome]:
    """Run ``runs`` with at most ``jobs`` at a time; returns each run's outcome by id.

    A run that exits with an error other than bad input or divergence (:data:`syre_rl.cli.FINAL_EXITS`) is
    queued again, up to ``max_retries``
    times; it then resumes from its last checkpoint. SIGINT or SIGTERM to the sweep stops starting runs and
    passes one SIGINT to each running one, which saves a checkpoint and exits; a later sweep resumes them.

    :param done_before: runs of the sweep already finished (for the progress counts)
    """
    pending: deque[Run] = deque(runs)
    running: dict[Run, subprocess.Popen] = {}
    attempts: dict[str, int] = {}
    outcomes: dict[str, Outcome] = {}
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            progress.event(f"stopping: passing {signal.Signals(signum).name} on as SIGINT to running runs")
            for proc in running.values():
                proc.send_signal(signal.SIGINT)
        stopping = True

    def refresh(messages: list[str]) -> None:
        progress.update(
            done=done_before + sum(o == "finished" for o in outcomes.values()),
            running=len(running),
            failed=sum(o == "failed" for o in outcomes.values()),
            pending=len(pending),
        )
        for message in messages:
            progress.event(message)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while running or (pending and not stopping):
            messages = []
            while pending and len(running) < jobs and not stopping:
                run = pending.popleft()
                attempts[run.id] = attempts.get(run.id, 0) + 1
                verb = "resuming" if run.state() == "resumable" else "starting"
                running[run] = launch(run, log_dir, threads)
                again = f" (attempt {attempts[run.id]})" if attempts[run.id] > 1 else ""
                messages.append(f"{verb} {run.id}{again}")
            for run, proc in list(running.items()):
                status = proc.poll()
                if status is None:
                    continue
                del running[run]
                log = log_file(log_dir, run)
                if status == 0 and run.state() == "finished":
                    outcomes[run.id] = "finished"
                    messages.append(f"finished {run.id}")
                elif stopping:
                    outcomes[run.id] = "interrupted"
                    messages.append(f"stopped {run.id} (exit {status}); the next sweep resumes it")
                elif status not in FINAL_EXITS and attempts[run.id] <= max_retries:
                    pending.append(run)
                    messages.append(f"run {run.id} died (exit {status}); starting it again: {last_line(log)}")
                else:
                    outcomes[run.id] = "failed"
                    messages.append(f"FAILED {run.id} (exit {status}): {last_line(log)} [log: {log}]")
            refresh(messages)
            if running:
                time.sleep(POLL_SECONDS)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for run in pending:
        outcomes.setdefault(run.id, "interrupted")
    return outcomes
