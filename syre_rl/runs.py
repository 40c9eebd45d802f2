"""The one description of a run directory: what each kind of run writes, its marker, atomic writes, and the
checks that decide whether a run finished, can resume, or may be replaced.

Every run directory holds a marker file, :data:`MARKER`, naming its kind (``rl``: ``scripts/train_ppo.py``,
``supervised``: ``scripts/train_supervised.py``, ``rl-plasticity``: ``scripts/rl_plasticity.py``). One process
at a time writes a run directory (:class:`RunLock`, taken by :func:`claim_run` once a run's checks pass).
``--force`` deletes a directory only if the marker names the script's own kind and every path in it, at every
depth, is one that kind writes (:data:`LAYOUTS`), so it can never delete a user's files or another script's
run. Standard library only: the sweep and the plots read run directories without importing torch.

RL (``syre_rl.rl``)::

  .syre_rl-run             the marker: {"kind": "rl"}
  .syre_rl-lock            empty; its flock marks the one process writing the directory (every kind has it)
  config.json              what the run is (algorithm, preset fields, seed): --resume rebuilds it from here
  tb/                      TensorBoard event files (one per start; steps continue across resumes)
  monitor/from-<step>/     Monitor CSVs of each start of the environments (resumes and checkpoints)
  checkpoints/step_<n>/    model.zip (+ vecnormalize.pkl) and the config.json it was trained with: written to
                           a temporary folder, then renamed
  final/                   the same layout, at the end of the run

supervised (``syre_rl.supervised``)::

  .syre_rl-run             the marker: {"kind": "supervised"}
  checkpoint.pt            the state after the last finished stage
  results.json             measurements of every finished stage
  tb/                      TensorBoard event files

rl-plasticity (``syre_rl.rl.plasticity``)::

  .syre_rl-run             the marker: {"kind": "rl-plasticity"}
  results.json             every regime's returns and measurements, written once at the end (done: true)
  tb/                      TensorBoard event files
  checkpoints/step_<n>/    the agent at the end of every regime, as RL's
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from syre_rl.cli import UsageError

__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "FINAL",
    "LAYOUTS",
    "LOCK",
    "MARKER",
    "MODEL_FILE",
    "MONITOR",
    "RESULTS",
    "SUPERVISED_CHECKPOINT",
    "TB",
    "VECNORMALIZE_FILE",
    "atomic_write",
    "atomic_write_text",
    "claim_run",
    "claimed_runs",
    "clear_run",
    "finished",
    "foreign_path",
    "prepare_new_run",
    "resumable",
    "run_kind",
    "RunKind",
    "RunLock",
    "write_json",
    "write_marker",
]

RunKind = Literal["rl", "supervised", "rl-plasticity"]

MARKER = ".syre_rl-run"
LOCK = ".syre_rl-lock"  # an empty file; its flock marks the one process writing the run directory
TB = "tb"
CONFIG = "config.json"
MONITOR = "monitor"
CHECKPOINTS = "checkpoints"
FINAL = "final"
MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
SUPERVISED_CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"

# What each kind writes, at every depth: regular expressions over paths relative to the run directory. A run
# directory holding anything else (a user's notes, a ``.git``, a file inside ``checkpoints/``) is not replaced by
# ``--force``: the first such path is named instead.
_TB = (TB, rf"{TB}/events\.out\.tfevents\.[^/]+")
_SAVED = rf"({CHECKPOINTS}/step_\d+|{FINAL})"  # one SB3 checkpoint folder
_SAVED_FILES = (_SAVED, rf"{_SAVED}/({re.escape(MODEL_FILE)}|{re.escape(VECNORMALIZE_FILE)}|{re.escape(CONFIG)})")
LAYOUTS: dict[str, tuple[str, ...]] = {
    "rl": (re.escape(MARKER), re.escape(LOCK), re.escape(CONFIG), *_TB, MONITOR, rf"{MONITOR}/from-\d+",
           rf"{MONITOR}/from-\d+/[^/]+\.monitor\.csv", CHECKPOINTS, *_SAVED_FILES),
    "supervised": (re.escape(MARKER), re.escape(LOCK), re.escape(SUPERVISED_CHECKPOINT), re.escape(RESULTS), *_TB),
    "rl-plasticity": (re.escape(MARKER), re.escape(LOCK), re.escape(RESULTS), *_TB, CHECKPOINTS, *_SAVED_FILES),
}  # fmt: skip
_LAYOUT_RES = {kind: re.compile("|".join(f"({p})" for p in patterns)) for kind, patterns in LAYOUTS.items()}
# Leftovers of an interrupted atomic write: ``.<name>.tmp`` files (:func:`atomic_write`) and ``.<name>-XXXXXXXX``
# folders (:func:`temporary_dir`, eight characters of mkdtemp's alphabet).
_TEMPORARY = re.compile(r"\.[^/]+\.tmp|\.[^/]+-[a-z0-9_]{8}")
RESUMABLE = ("rl", "supervised")  # an rl-plasticity run takes minutes: an unfinished one restarts
SCRIPTS = {"rl": "train_ppo.py", "supervised": "train_supervised.py", "rl-plasticity": "rl_plasticity.py"}


# ------------------------------------------------------------------------------------------- writes
def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a hidden temporary file beside ``path``, then rename it into place.

    A crash leaves the old file or the new one, never half of one (the rename is atomic on POSIX).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:  # a full disk, a size limit, Ctrl-C: no half-written temporary file stays behind
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, data: Any, *, indent: int = 1, sort_keys: bool = False) -> None:
    """``data`` as JSON, written atomically (every JSON file a run or report writes goes through here)."""
    atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")


def foreign_path(run_dir: Path, kind: str) -> Path | None:
    """The first path inside ``run_dir`` (depth first, sorted) that a run of ``kind`` does not write, or None.

    Symbolic links are always foreign (the toolkit writes none, and following one could leave the folder);
    a temporary folder of an interrupted write counts as the toolkit's, with whatever it holds.
    """
    run_dir = Path(run_dir)
    layout = _LAYOUT_RES[kind]
    pending = [run_dir]
    while pending:
        folder = pending.pop(0)
        for entry in sorted(folder.iterdir()):
            relative = entry.relative_to(run_dir).as_posix()
            if entry.is_symlink():
                return entry
            if _TEMPORARY.fullmatch(entry.name):
                continue
            if not layout.fullmatch(relative):
                return entry
            if entry.is_dir():
                pending.append(entry)
    return None


# ------------------------------------------------------------------------------------------- marker
def write_marker(run_dir: Path, kind: RunKind) -> None:
    """Create ``run_dir`` and mark it as a run of ``kind`` (the first file a run writes)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / MARKER, json.dumps({"kind": kind}) + "\n")


def run_kind(run_dir: Path) -> str | None:
    """The kind the marker names, or None when there is no readable marker."""
    try:
        kind = json.loads((Path(run_dir) / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def prepare_new_run(run_dir: Path, kind: RunKind, force: bool) -> bool:
    """Check that a new run of ``kind`` may start in ``run_dir``; True when an old run must be cleared first.

    Raises :class:`UsageError` (and changes nothing) when the directory holds anything but an empty folder,
    unless ``force`` is given and the directory is a run of ``kind`` with nothing in it that such a run does not
    write. Call :func:`clear_run` only once every other check of the new run has passed.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run directory {run_dir} is a file")
    if not run_dir.is_dir() or not any(p.name != LOCK for p in run_dir.iterdir()):
        return False
    if not force:
        how = "pass --resume to continue it or --force" if kind in RESUMABLE else "pass --force"
        raise UsageError(f"run directory {run_dir} exists; {how} to replace it")
    found = run_kind(run_dir)
    if found is None:
        raise UsageError(
            f"--force deletes only run directories this toolkit wrote; {run_dir} has no {MARKER} (delete it yourself)"
        )
    if found != kind:
        raise UsageError(
            f"--force: {run_dir} holds a run of {SCRIPTS.get(found, found)}; this script replaces only its own runs"
        )
    foreign = foreign_path(run_dir, kind)
    if foreign is not None:
        raise UsageError(
            f"--force deletes only what {SCRIPTS[kind]} writes; {foreign} is not such a file (move it out first)"
        )
    return True


def clear_run(run_dir: Path) -> None:
    """Delete what :func:`prepare_new_run` allowed (the run's entries, marker last); the folder and its lock
    file stay (the lock is held while clearing)."""
    for entry in sorted((p for p in Path(run_dir).iterdir() if p.name != LOCK), key=lambda p: p.name == MARKER):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# ------------------------------------------------------------------------------------------ the lock
class RunLock:
    """The one writer of a run directory: an exclusive ``flock`` on its empty file :data:`LOCK`.

    The kernel drops the lock when the process ends, however it ends, so a crashed run never blocks the next
    one. A regular file rather than the directory itself, so that the lock also holds where directories cannot be
    locked (NFS, which a Ray cluster's shared run folder usually is). Use as a context manager or call
    :meth:`release`.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir)
        self._fd: int | None = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise UsageError(f"run directory {self.path} is in use by another process; wait for it or stop it") from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_CLAIMED: list[Path] = []  # run directories this process has claimed (the lifecycle names them on a failure)


def claimed_runs() -> list[Path]:
    """The run directories this process has claimed so far (a failure after a claim is a failure mid-run)."""
    return list(_CLAIMED)


def claim_run(run_dir: Path, kind: RunKind, *, resume: bool, force: bool) -> RunLock:
    """Become the one writer of ``run_dir`` for a run of ``kind``, once every other check has passed.

    A new run's directory is created if needed, locked, checked again under the lock (another process may
    have started or finished a run there since the first check), emptied when ``force`` allows it, and marked.
    A resumed run's directory is locked as it is. Raises :class:`UsageError` (nothing written but the empty lock
    file) when the directory is in use or no longer fits.
    """
    run_dir = Path(run_dir)
    if not resume:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create run directory {run_dir}: {err.strerror or err}") from None
    lock = RunLock(run_dir)
    try:
        if not resume:
            if prepare_new_run(run_dir, kind, force):
                clear_run(run_dir)
            write_marker(run_dir, kind)
    except BaseException:
        lock.release()
        raise
    _CLAIMED.append(run_dir)
    return lock


# --------------------------------------------------------------------------------------- run states
def finished(kind: str, run_dir: Path) -> bool:
    """Whether the run completed: RL's ``final/`` is renamed into place after the last step; a supervised
    ``results.json`` is rewritten after every stage, so only ``stages_done == stages`` means finished."""
    run_dir = Path(run_dir)
    if kind == "rl":
        return (run_dir / FINAL / MODEL_FILE).is_file()
    try:
        results = json.loads((run_dir / RESULTS).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(results, dict):
        return False
    if kind == "rl-plasticity":  # results.json is written once, at the end
        return results.get("done") is True
    return results.get("stages_done") == results.get("stages") is not None


def resumable(kind: str, run_dir: Path) -> bool:
    """Whether ``--resume`` can continue the run (a complete checkpoint is there; temporary folders start
    with a dot, so the glob skips them)."""
    run_dir = Path(run_dir)
    if kind == "rl-plasticity":  # a run takes minutes: an unfinished one restarts
        return False
    if kind == "rl":
        return (run_dir / CONFIG).is_file() and any(
            (p / MODEL_FILE).is_file() for p in (run_dir / CHECKPOINTS).glob("step_*")
        )
    return (run_dir / SUPERVISED_CHECKPOINT).is_file()


def temporary_dir(parent: Path, name: str) -> Path:
    """A fresh hidden folder in ``parent`` for an atomic folder write (see :func:`replace_dir`)."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))


def replace_dir(tmp: Path, target: Path) -> None:
    """Rename the finished folder ``tmp`` to ``target``, swapping out an existing ``target`` atomically."""
    if target.exists():
        old = temporary_dir(target.parent, f"old-{target.name}")
        os.replace(target, old / target.name)
        os.replace(tmp, target)
        shutil.rmtree(old)
    else:
        os.replace(tmp, target)
