"""The one place that knows the training scripts' command lines and run directories.

A sweep run is a script, its argument list and a run directory. What the sweep needs from a script is small:
the flags that pick the task and the seed, and how to tell from its run directory whether it finished or can
resume. The layouts are described in :mod:`syre_rl.runs`, which reads them as plain paths so that the sweep
starts without importing Stable-Baselines3 or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syre_rl import runs
from syre_rl.presets import PROJECT_ROOT
from syre_rl.runs import RunKind

__all__ = ["SCRIPTS", "TrainScript"]


@dataclass(frozen=True)
class TrainScript:
    """How the sweep drives one training script.

    :param path: the script
    :param task_flag: the flag whose value is a grid's task (``--env``, ``--experiment``)
    :param seed_flag: the flag whose value is a grid's seed
    :param kind: the kind of run directory it writes (see :mod:`syre_rl.runs`)
    """

    path: Path
    task_flag: str
    seed_flag: str
    kind: RunKind
    resume_flag: str = "--resume"
    restart_flag: str = "--force"  # both scripts: replace whatever a run left in --run-dir
    run_dir_flag: str = "--run-dir"

    def finished(self, run_dir: Path) -> bool:
        return runs.finished(self.kind, run_dir)

    def resumable(self, run_dir: Path) -> bool:
        return runs.resumable(self.kind, run_dir)


SCRIPTS: dict[str, TrainScript] = {
    "train_ppo": TrainScript(
        path=PROJECT_ROOT / "scripts" / "train_ppo.py",
        task_flag="--env",
        seed_flag="--seed",
        kind="rl",
    ),
    "rl_plasticity": TrainScript(  # a run takes minutes: an unfinished one restarts (never resumable)
        path=PROJECT_ROOT / "scripts" / "rl_plasticity.py",
        task_flag="--env",
        seed_flag="--seed",
        kind="rl-plasticity",
    ),
    "train_supervised": TrainScript(
        path=PROJECT_ROOT / "scripts" / "train_supervised.py",
        task_flag="--experiment",
        seed_flag="--seed",
        kind="supervised",
    ),
}
