"""The command-line convention of every script: one-line errors, exit codes, and checked number types.

A script that is given bad input prints one line, ``<prog>: error: <what is wrong>``, on stderr and exits with
:data:`EXIT_BAD_INPUT` before it writes anything. The sweep's retry rule reads these codes: a run that ends
with a code in :data:`FINAL_EXITS` is not started again (another attempt would fail the same way).

This module imports only the standard library, so a script can reject bad input before importing torch,
Stable-Baselines3 or PyBullet.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "CheckpointError",
    "CheckpointWriteError",
    "DivergedError",
    "EXIT_BAD_INPUT",
    "EXIT_DIVERGED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "FINAL_EXITS",
    "MAX_SEED",
    "OneLineParser",
    "UsageError",
    "check_device",
    "check_writable",
    "fail",
    "finite_float",
    "member_count",
    "name_list",
    "non_empty",
    "path_arg",
    "non_negative_int",
    "positive_int",
    "seed_int",
]

EXIT_FAILED = 1  # some runs of a sweep failed
EXIT_BAD_INPUT = 2  # bad input: nothing was changed; starting again cannot help
EXIT_DIVERGED = 3  # stopped mid-run (a non-finite loss or weight, a write that failed); the last good checkpoint is kept
EXIT_INTERRUPTED = 130  # the shell's code for "stopped by SIGINT": a checkpoint was saved
FINAL_EXITS = frozenset({EXIT_BAD_INPUT, EXIT_DIVERGED})

MAX_SEED = 2**31 - 1  # seeds plus step offsets must stay below numpy's 2**32
MAX_INT = 2**62  # larger counts are typos, and would overflow int64 tensors and numpy seeds
MAX_MEMBERS = 10_000  # members (seeds) of one stacked run: more would not fit in memory anyway


class UsageError(ValueError):
    """Bad input the user can fix; reported as one line with exit status :data:`EXIT_BAD_INPUT`."""


class CheckpointError(UsageError):
    """A checkpoint or a run's config is missing, unreadable, or not the run's; the message says which and why."""


class DivergedError(RuntimeError):
    """Training produced a non-finite loss or weight; reported with exit status :data:`EXIT_DIVERGED`."""


class CheckpointWriteError(DivergedError):
    """A checkpoint could not be written (disk full, a file-size limit, an I/O error). The run stops like a
    diverging one (exit status 3, the last good checkpoint kept): starting it again would fail the same way
    until the cause is fixed."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage block), like every other bad input.

    :param renamed: flags that are gone -> what to use instead (named in the one line when they are given)
    """

    def __init__(self, *args: Any, renamed: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.renamed = renamed or {}

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        for token in sys.argv[1:] if args is None else args:
            flag = str(token).split("=", 1)[0]
            if flag in self.renamed:
                self.error(f"{flag} is gone; use {self.renamed[flag]}")
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``<prog>: error: <message>`` (its first line only) on stderr and exit with ``code``."""
    first = str(message).strip().splitlines()[0] if str(message).strip() else "unknown error"
    print(f"{prog}: error: {first}", file=sys.stderr)
    raise SystemExit(code)


# ------------------------------------------------------------------------------------ argparse types
def finite_float(text: str) -> float:
    """A finite number (``nan``, ``inf`` and overflowing literals such as ``1e400`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        if any(c in text.lower() for c in ".e"):  # 1e6 and 2.0e5 are common ways to write step counts
            number = float(text)
            if not math.isfinite(number) or number != int(number):
                raise ValueError
            return int(number)
        return int(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer in ``[1, 2**62]``; ``1e6`` is accepted."""
    value = _integer(text)
    if not 0 < value <= MAX_INT:
        raise argparse.ArgumentTypeError(f"must be an integer in [1, 2**62], got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An integer in ``[0, 2**62]`` (``0`` usually meaning "none" or "all")."""
    return 0 if text.strip() == "0" else positive_int(text)


def seed_int(text: str) -> int:
    """A seed in ``[0, 2**31 - 1]`` (runs add step offsets to it, and numpy takes seeds below 2**32)."""
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_SEED}], got {text}")
    return value


def member_count(text: str) -> int:
    """A count of members or seeds of one run, in ``[1, 10000]`` (checked before anything is allocated)."""
    value = _integer(text)
    if not 0 < value <= MAX_MEMBERS:
        raise argparse.ArgumentTypeError(f"must be an integer in [1, {MAX_MEMBERS:,}], got {text}")
    return value


def path_arg(text: str) -> Path:
    """A path that is not empty (``--run-dir ''`` would silently mean the working directory)."""
    return Path(non_empty(text))


def non_empty(text: str) -> str:
    """A name that is not empty or blank (an empty ``--preset ''`` would silently mean the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def name_list(text: str) -> list[str]:
    """Comma-separated names, each given once and none empty: ``none,l2,syre``."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{', '.join(twice)} is listed more than once in {text!r}")
    return names


# -------------------------------------------------------------------------------------- environment
def check_device(device: str) -> str:
    """``device`` if torch can use it here (``cpu``, ``cuda[:i]``, ``mps``, ``auto``), else :class:`UsageError`."""
    import torch  # noqa: PLC0415  (only once the arguments are known to be otherwise fine)

    if device == "auto":
        return device
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device: {device!r} is not a torch device (cpu, cuda, cuda:0, auto)") from None
    if parsed.type == "cuda" and (
        not torch.cuda.is_available() or (parsed.index or 0) >= torch.cuda.device_count()
    ):
        raise UsageError(f"--device {device}: no such CUDA device here (use cpu)")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: MPS is not available here (use cpu)")
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {device}: only cpu, cuda and mps are supported")
    return device


def check_writable(path: Path, what: str = "directory") -> None:
    """Raise :class:`UsageError` unless ``path`` is (or can be created as) a writable directory.

    Walks up to the first existing ancestor: a file there, a dangling symbolic link on the way, a name longer
    than the filesystem allows, or a folder in which no folder can be made (no write permission, a read-only
    or virtual filesystem such as ``/proc``) means the directory cannot be created. Nothing is left behind:
    the last check makes an empty folder in that ancestor and removes it at once.
    """
    path = Path(path).absolute()
    try:
        path.exists()
    except OSError as err:  # a name too long for the filesystem, a loop of links
        raise UsageError(f"cannot create {what} {str(path)[:120]}...: {err.strerror}") from None
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a directory")
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise UsageError(f"cannot create {what} {path}: {existing} is a link to a missing target")
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot create {what} {path}: {existing} is a file")
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in path.relative_to(existing).parts:
        if len(os.fsencode(part)) > name_max:
            raise UsageError(
                f"cannot create {what} {path}: the name {part[:40]}... is longer than {name_max} bytes"
            )
    if len(os.fsencode(str(path))) >= path_max:
        raise UsageError(f"cannot create {what} {path}: the path is longer than {path_max} bytes")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {what} {path}: {existing} is not writable")
    if existing == path and not _can_create_in(path):
        raise UsageError(f"cannot write {what} {path}: no file can be created there")
    if existing != path and not _can_create_in(existing):
        raise UsageError(f"cannot create {what} {path}: no folder can be created in {existing}")


def _can_create_in(folder: Path) -> bool:
    """Whether a folder can be made in ``folder`` (made and removed at once: os.access says yes to root, and to
    read-only and virtual filesystems such as /proc)."""
    import tempfile  # noqa: PLC0415

    try:
        probe = tempfile.mkdtemp(prefix=".syre_rl-probe-", dir=folder)
    except OSError:
        return False
    os.rmdir(probe)
    return True
