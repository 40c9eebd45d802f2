"""Start one attempt of a run as a child process, with its output appended to the run's log file.

Both executors (local and Ray) start runs here, so a run behaves the same wherever it runs: it resumes from
its checkpoint when its directory has one (:meth:`Run.command`), uses the run's share of CPU threads, and on
Linux is sent SIGTERM if the process that started it dies, so that a killed sweep (or a lost Ray worker) never
leaves a run training on behind its back; the training scripts checkpoint on SIGTERM.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from syre_rl.sweep.grid import Run

__all__ = ["last_line", "launch", "log_file"]

_PR_SET_PDEATHSIG = 1


def log_file(log_dir: Path, run: Run) -> Path:
    return log_dir / f"{run.id}.log"


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent exits (no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def launch(run: Run, log_dir: Path, threads: int = 1) -> subprocess.Popen:
    """Start ``run`` once (resuming it if it can) in its own session; output goes to its log file.

    Its own session keeps a Ctrl-C in the sweep's terminal from reaching the run directly: the sweep passes
    exactly one SIGINT on, which the scripts answer with a checkpoint (a second one would kill them at once).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    command = run.command(sys.executable)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
        "PYTHONSAFEPATH": "1",  # python -m syre_rl imports the installed package, never one in the working directory
    }
    with open(log_file(log_dir, run), "a") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n")
        log.flush()
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def last_line(path: Path) -> str:
    """The last non-empty line of a log (the scripts' one-line error), for failure messages."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""
