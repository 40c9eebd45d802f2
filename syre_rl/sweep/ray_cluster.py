"""Run a sweep's runs on a Ray cluster: one Ray task per run, with its resources, retried if it dies.

Ray is an optional extra (``pip install -e .[ray]``) and is imported only here, when a sweep is given
``--address``. Every node needs this repository at the same path, the same Python environment and the sweep
directory on a shared filesystem: a task runs the training script as a child process on its node, and
the run writes its directory (and resumes from it) wherever the task lands.
"""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from typing import Any

from syre_rl.cli import FINAL_EXITS, UsageError
from syre_rl.sweep.grid import Run
from syre_rl.sweep.launch import last_line, launch, log_file
from syre_rl.sweep.progress import Progress

__all__ = ["ClusterError", "RunDied", "check_address", "import_ray", "run_on_ray"]

WAIT_SECONDS = 1.0
CONNECT_SECONDS = 5.0  # a head that does not answer a TCP connection within this is not there


class ClusterError(ConnectionError):
    """The Ray cluster cannot be reached; the message names the address and the reason."""


class RunDied(RuntimeError):
    """A run's process ended with an error that another attempt (resuming) may not have: Ray retries it."""


def run_task(run: Run, log_dir: Path, threads: int) -> tuple[str, int]:
    """The body of a run's Ray task, on whichever node it lands: ``(outcome, exit status)``.

    A retry after a lost node finds the run's directory as the dead attempt left it and resumes; a run that
    finished before the node was lost is not run again. Bad input and divergence are not retried.
    """
    if run.state() == "finished":
        return "finished", 0
    proc = launch(run, log_dir, threads)
    try:
        status = proc.wait()
    except BaseException:  # ray.cancel: let the run checkpoint before the task goes
        proc.send_signal(signal.SIGINT)
        proc.wait()
        raise
    if status == 0 and run.state() == "finished":
        return "finished", 0
    if status in FINAL_EXITS:  # bad input or divergence: another attempt would end the same way
        return "failed", status
    raise RunDied(f"{run.id} exited with status {status}: {last_line(log_file(log_dir, run))}")


def import_ray() -> Any:
    """The ray module, or UsageError with the install command (Ray is an optional extra)."""
    try:
        import ray  # noqa: PLC0415  (optional extra)
    except ImportError:
        raise UsageError(
            "--address needs Ray: pip install -e '.[ray]' (or pip install 'ray[default]')"
        ) from None
    return ray


def check_address(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """Raise :class:`UsageError` unless Ray is installed and ``address`` (``HOST:PORT``, ``ray://HOST:PORT`` or
    ``auto``) answers a TCP connection within ``timeout`` seconds. ``ray.init`` waits far longer on an address
    where nothing listens; this check runs before the sweep creates anything."""
    import_ray()
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address must be HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    deadline = time.monotonic() + timeout
    while True:  # a head that is still starting refuses connections for a moment: try again until the deadline
        try:
            with socket.create_connection((host, int(port)), timeout=max(0.1, deadline - time.monotonic())):
                return
        except OSError as err:
            if isinstance(err, ConnectionRefusedError) and time.monotonic() + 0.5 < deadline:
                time.sleep(0.5)
                continue
            reason = (
                "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err) or type(err).__name__)
            )
            raise UsageError(
                f"--address {address}: cannot reach the Ray head at {host}:{port} within {timeout:g} s ({reason})"
            ) from None


def run_on_ray(
    runs: list[Run],
    *,
    address: str,
    cpus_per_run: float,
    gpus_per_run: float,
    max_retries: int,
    log_dir: Path,
    progress: Progress,
    done_before: int = 0,
) -> dict[str, str]:
    """Submit every run as a Ray task to the cluster at ``address``; returns each run's outcome by id.

    Ray schedules the tasks by their declared ``num_cpus`` / ``num_gpus``, and starts a task again (up to
    ``max_retries`` times) when its worker or node dies or the run exits with an error (:class:`RunDied`).
    Ctrl-C cancels the tasks; each run saves a checkpoint first.
    """
    ray = import_ray()
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ClusterError(
            f"cannot connect to the Ray cluster at {address}: {str(err).splitlines()[0]}"
        ) from None
    task = ray.remote(run_task).options(
        num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries, retry_exceptions=[RunDied]
    )
    threads = max(1, int(cpus_per_run))
    refs = {task.remote(run, log_dir, threads): run for run in runs}
    outcomes: dict[str, str] = {}
    progress.event(f"submitted {len(runs)} runs to the Ray cluster at {address}")
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=WAIT_SECONDS)
            for ref in ready:
                run = refs.pop(ref)
                try:
                    outcome, status = ray.get(ref)
                    detail = f" (exit {status}): {last_line(log_file(log_dir, run))}" if status else ""
                except Exception as err:  # RayTaskError wrapping RunDied after the last retry, or a lost task
                    outcome, detail = "failed", f": {str(err).strip().splitlines()[-1]}"
                outcomes[run.id] = outcome
                progress.event(f"{'finished' if outcome == 'finished' else 'FAILED'} {run.id}{detail}")
            progress.update(
                done=done_before + sum(o == "finished" for o in outcomes.values()),
                running=len(refs),  # submitted and not done: running or queued for resources
                failed=sum(o == "failed" for o in outcomes.values()),
            )
    except KeyboardInterrupt:
        progress.event("stopping: cancelling the Ray tasks (each run saves a checkpoint)")
        for ref in refs:
            ray.cancel(ref)
        ray.wait(list(refs), num_returns=len(refs), timeout=120)
        outcomes.update({run.id: "interrupted" for run in refs.values()})
    finally:
        ray.shutdown()
    return outcomes
