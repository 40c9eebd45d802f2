"""The one place that knows the training scripts' command lines and run directories.

A sweep run is a script, its argument list and a run directory. What the sweep needs from a script is small:
the flags that pick the task and the seed, and how to tell from its run directory whether it finished or can
resume. The layouts are those of ``syre_rl/rl/run_dir.py`` (``scripts/train_ppo.py``) and
``syre_rl/supervised/train.py`` (``scripts/train_supervised.py``); they are checked as plain paths so that the
sweep starts without importing Stable-Baselines3 or torch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from syre_rl.presets import PROJECT_ROOT

__all__ = ["SCRIPTS", "TrainScript"]


@dataclass(frozen=True)
class TrainScript:
    """How the sweep drives one training script.

    :param path: the script
    :param task_flag: the flag whose value is a grid's task (``--env``, ``--experiment``)
    :param seed_flag: the flag whose value is a grid's seed
    :param finished: ``run_dir -> bool``: the script's own completion marker is there
    :param resumable: ``run_dir -> bool``: ``--resume`` can continue it (a complete checkpoint is there)
    """

    path: Path
    task_flag: str
    seed_flag: str
    finished: Callable[[Path], bool]
    resumable: Callable[[Path], bool]
    resume_flag: str = "--resume"
    restart_flag: str = "--force"  # both scripts: replace whatever a run left in --run-dir
    run_dir_flag: str = "--run-dir"


def _ppo_finished(run_dir: Path) -> bool:
    """``final/`` is renamed into place after the last step, so its model file means the run completed."""
    return (run_dir / "final" / "model.zip").is_file()


def _ppo_resumable(run_dir: Path) -> bool:
    """A complete step checkpoint (temporary folders start with a dot) and the config that rebuilds the run."""
    checkpoints = run_dir / "checkpoints"
    return (run_dir / "config.json").is_file() and any(
        (p / "model.zip").is_file() for p in checkpoints.glob("step_*")
    )


def _supervised_finished(run_dir: Path) -> bool:
    """``results.json`` is rewritten after every stage, so only ``stages_done == stages`` means finished."""
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(results, dict) and results.get("stages_done") == results.get("stages") is not None


def _supervised_resumable(run_dir: Path) -> bool:
    return (run_dir / "checkpoint.pt").is_file()


def _plasticity_finished(run_dir: Path) -> bool:
    """``results.json`` is written once, at the end, with ``done: true``."""
    try:
        return json.loads((run_dir / "results.json").read_text()).get("done") is True
    except (OSError, ValueError, AttributeError):
        return False


SCRIPTS: dict[str, TrainScript] = {
    "train_ppo": TrainScript(
        path=PROJECT_ROOT / "scripts" / "train_ppo.py",
        task_flag="--env",
        seed_flag="--seed",
        finished=_ppo_finished,
        resumable=_ppo_resumable,
    ),
    "rl_plasticity": TrainScript(  # minutes a run: an unfinished one restarts (--force)
        path=PROJECT_ROOT / "scripts" / "rl_plasticity.py",
        task_flag="--env",
        seed_flag="--seed",
        finished=_plasticity_finished,
        resumable=lambda run_dir: False,
    ),
    "train_supervised": TrainScript(
        path=PROJECT_ROOT / "scripts" / "train_supervised.py",
        task_flag="--experiment",
        seed_flag="--seed",
        finished=_supervised_finished,
        resumable=_supervised_resumable,
    ),
}
