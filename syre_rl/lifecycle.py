"""The one run lifecycle: every command of the toolkit, how a command line becomes a run, and how it ends.

A command is a module with ``parse_args(argv)``, ``check(args)`` (every test of the input that can fail, with
nothing written) and ``run(args) -> int``. :func:`run_command` calls the three in that order and turns every
failure a user can cause into one line, ``<prog>: error: <what>``, and an exit status (:mod:`syre_rl.cli`):

- bad input (:class:`~syre_rl.cli.UsageError` and its kinds: preset, checkpoint, data errors) and OS errors
  a user can cause (an unwritable or special path, a name too long): status 2; other OS errors: status 1; any
  OS error once a run has claimed its directory (mid-run): status 3, the run named;
- a diverging run, or a checkpoint that cannot be written mid-run (a full disk, a size limit;
  :class:`~syre_rl.cli.DivergedError`): status 3, the last good checkpoint named;
- Ctrl-C: status 130.

The training commands (:data:`TRAINING`) write run directories (:mod:`syre_rl.runs`: layout, lock, ``--force``);
the sweep maps a grid's ``script`` to one of them and launches ``python -m syre_rl <command>``, so a sweep runs
from an installed package as from the repository. ``scripts/<prog>`` and ``python -m syre_rl <command>`` (or
the ``syre-rl`` console command) are the same entry points. No command module is imported until one is chosen.
"""

from __future__ import annotations

import errno
import importlib
import sys
from argparse import Namespace
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from syre_rl.cli import (
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    DivergedError,
    UsageError,
    fail,
)
from syre_rl.runs import RunKind, claimed_runs

__all__ = ["COMMANDS", "TRAINING", "Command", "CommandModule", "main", "run_command"]


class CommandModule(Protocol):
    PROG: str

    def parse_args(self, argv: Sequence[str] | None) -> Namespace: ...

    def check(self, args: Namespace) -> None: ...

    def run(self, args: Namespace) -> int: ...


@dataclass(frozen=True)
class Command:
    """One command line of the toolkit.

    :param name: its name after ``python -m syre_rl``
    :param module: the module that parses, checks and runs it
    :param summary: one line for ``python -m syre_rl --help``
    :param kind: the kind of run directory a training command writes (:mod:`syre_rl.runs`)
    :param task_flag: the flag whose value is a sweep grid's task (``--env``, ``--experiment``)
    :param report: the command that reports a sweep of a training command's runs (tables, figures, intervals
        over seeds); the sweep names it when it ends
    """

    name: str
    module: str
    summary: str
    kind: RunKind | None = None
    task_flag: str | None = None
    report: str | None = None
    seed_flag: str = "--seed"
    run_dir_flag: str = "--run-dir"
    resume_flag: str = "--resume"
    restart_flag: str = "--force"

    def load(self) -> CommandModule:
        module: ModuleType = importlib.import_module(self.module)
        return module  # type: ignore[return-value]

    def check_argv(self, argv: Sequence[str]) -> None:
        """Parse and check a command line without running it (the sweep checks every run's with this)."""
        module = self.load()
        module.check(module.parse_args(list(argv)))


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command("train", "syre_rl.rl.command", "train an SB3 agent (PPO by default) with or without syre",
                kind="rl", task_flag="--env", report="plot"),
        Command("plasticity", "syre_rl.rl.plasticity", "measure RL plasticity: a continuing agent against fresh ones",
                kind="rl-plasticity", task_flag="--env", report="rl-report"),
        Command("supervised", "syre_rl.supervised.command", "train one of the paper's supervised experiments",
                kind="supervised", task_flag="--experiment", report="plot"),
        Command("sweep", "syre_rl.sweep.command", "run a grid of runs here or on a Ray cluster"),
        Command("plot", "syre_rl.sweep.plot", "figures and tables of a sweep's TensorBoard logs"),
        Command("report", "syre_rl.supervised.report", "tables and figures of a supervised run"),
        Command("plasticity-report", "syre_rl.supervised.plasticity_report", "report a supervised plasticity benchmark"),
        Command("rl-report", "syre_rl.rl.report", "report an RL plasticity sweep: controls, separations, figures"),
        Command("diagnose", "syre_rl.rl.diagnose", "which part of an agent lost plasticity: counterfactual resets"),
        Command("download", "syre_rl.supervised.download", "fetch MNIST or Fashion-MNIST, checked and atomic"),
    )
}  # fmt: skip
# A sweep grid's ``script`` names one of these training commands.
TRAINING: dict[str, Command] = {
    "train_ppo": COMMANDS["train"],
    "rl_plasticity": COMMANDS["plasticity"],
    "train_supervised": COMMANDS["supervised"],
}

# OS errors a user causes (and can fix): one line, exit status 2. Any other OS error (an I/O error, a lost
# network mount) is one line too, with exit status 1: the sweep retries it.
_USER_OS_ERRORS = {
    errno.ENAMETOOLONG: "a file name is too long",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "a file reached the size limit",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.ELOOP: "too many levels of symbolic links",
}


def os_error_line(err: OSError) -> str:
    """One line for an OS error: what failed and on which path."""
    what = _USER_OS_ERRORS.get(err.errno or 0) or err.strerror or type(err).__name__
    where = f" ({err.filename})" if err.filename else ""
    return f"{what}{where}"


def run_command(module: CommandModule, argv: Sequence[str] | None = None) -> int:
    """Parse, check and run one command; every failure a user can cause ends in one line and an exit status."""
    prog = module.PROG
    args = module.parse_args(None if argv is None else list(argv))  # argparse exits with its own one line
    try:
        module.check(args)
        return module.run(args)
    except UsageError as err:
        fail(prog, str(err))
    except DivergedError as err:
        fail(prog, str(err), EXIT_DIVERGED)
    except OSError as err:
        claimed = claimed_runs()
        if claimed:  # mid-run: what the run saved last is kept; a resume continues once the cause is fixed
            fail(prog, f"{os_error_line(err)}; the run in {claimed[-1]} stopped (its last checkpoint is kept)",
                 EXIT_DIVERGED)  # fmt: skip
        fail(prog, os_error_line(err), EXIT_BAD_INPUT if err.errno in _USER_OS_ERRORS else EXIT_FAILED)
    except KeyboardInterrupt:
        fail(prog, "interrupted", EXIT_INTERRUPTED)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m syre_rl <command> [options]``: one of :data:`COMMANDS`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(len(name) for name in COMMANDS)
        print("usage: python -m syre_rl <command> [options]   (or: syre-rl <command>)\n\ncommands:")
        for command in COMMANDS.values():
            print(f"  {command.name:{width}}  {command.summary}")
        print("\n<command> --help shows a command's options.")
        return 0 if argv else EXIT_BAD_INPUT
    if argv[0] not in COMMANDS:
        fail("syre_rl", f"unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}")
    return run_command(COMMANDS[argv[0]].load(), argv[1:])
