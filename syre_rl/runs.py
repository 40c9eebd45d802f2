"""The one description of a run directory: what each kind of run writes, its marker, atomic writes, and the
checks that decide whether a run finished, can resume, or may be replaced.

Every run directory holds a marker file, :data:`MARKER`, naming its kind (``rl``: ``scripts/train_ppo.py``,
``supervised``: ``scripts/train_supervised.py``). ``--force`` deletes a directory only if the marker names the
script's own kind and every entry in it is one that kind writes (:data:`LAYOUTS`), so it can never delete a
user's files or another script's run. Standard library only: the sweep and the plots read run directories
without importing torch.

RL (``syre_rl.rl``)::

  .syre_rl-run             the marker: {"kind": "rl"}
  config.json              what the run is (algorithm, preset fields, seed): --resume rebuilds it from here
  tb/                      TensorBoard event files (one per start; steps continue across resumes)
  monitor/from-<step>/     Monitor CSVs of each start of the environments (resumes and checkpoints)
  checkpoints/step_<n>/    model.zip (+ vecnormalize.pkl): written to a temporary folder, then renamed
  final/                   the same layout, at the end of the run

supervised (``syre_rl.supervised``)::

  .syre_rl-run             the marker: {"kind": "supervised"}
  checkpoint.pt            the state after the last finished stage
  results.json             measurements of every finished stage
  tb/                      TensorBoard event files
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from syre_rl.cli import UsageError

__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "FINAL",
    "LAYOUTS",
    "MARKER",
    "MODEL_FILE",
    "MONITOR",
    "RESULTS",
    "RunKind",
    "SUPERVISED_CHECKPOINT",
    "TB",
    "VECNORMALIZE_FILE",
    "atomic_write",
    "atomic_write_text",
    "clear_run",
    "finished",
    "prepare_new_run",
    "resumable",
    "run_kind",
    "write_marker",
]

RunKind = Literal["rl", "supervised", "rl-plasticity"]

MARKER = ".syre_rl-run"
TB = "tb"
CONFIG = "config.json"
MONITOR = "monitor"
CHECKPOINTS = "checkpoints"
FINAL = "final"
MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
SUPERVISED_CHECKPOINT = "checkpoint.pt"
RESULTS = "results.json"

LAYOUTS: dict[str, frozenset[str]] = {
    "rl": frozenset({MARKER, CONFIG, TB, MONITOR, CHECKPOINTS, FINAL}),
    "supervised": frozenset({MARKER, SUPERVISED_CHECKPOINT, RESULTS, TB}),
    "rl-plasticity": frozenset({MARKER, RESULTS, TB, CHECKPOINTS}),
}
SCRIPTS = {"rl": "train_ppo.py", "supervised": "train_supervised.py", "rl-plasticity": "rl_plasticity.py"}


# ------------------------------------------------------------------------------------------- writes
def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a hidden temporary file beside ``path``, then rename it into place.

    A crash leaves the old file or the new one, never half of one (the rename is atomic on POSIX).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _is_temporary(name: str) -> bool:
    """Leftovers of an interrupted atomic write (``.<name>.tmp``, ``.<name>-XXXX`` folders)."""
    return name.startswith(".") and name != MARKER


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
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return False
    if not force:
        raise UsageError(
            f"run directory {run_dir} exists; pass --resume to continue it or --force to replace it"
        )
    found = run_kind(run_dir)
    if found is None:
        raise UsageError(
            f"--force deletes only run directories this toolkit wrote; {run_dir} has no {MARKER} (delete it yourself)"
        )
    if found != kind:
        raise UsageError(
            f"--force: {run_dir} holds a run of {SCRIPTS.get(found, found)}; this script replaces only its own runs"
        )
    unknown = sorted(
        p.name for p in run_dir.iterdir() if p.name not in LAYOUTS[kind] and not _is_temporary(p.name)
    )
    if unknown:
        raise UsageError(
            f"--force: {run_dir} holds files a {kind} run does not write ({', '.join(unknown[:3])}); not deleting it"
        )
    return True


def clear_run(run_dir: Path) -> None:
    """Delete what :func:`prepare_new_run` allowed (the run's entries, marker last); the folder stays."""
    for entry in sorted(Path(run_dir).iterdir(), key=lambda p: p.name == MARKER):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


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
