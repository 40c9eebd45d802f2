"""A run directory: settings, TensorBoard log, Monitor files, atomic checkpoints and the final model.

runs/<name>/
  config.json              what the run is (algorithm, preset fields, seed): --resume rebuilds it from here
  tb/                      TensorBoard event files (one per start; steps continue across resumes)
  monitor/from-<step>/     Monitor CSVs of each start
  checkpoints/step_<n>/    model.zip (+ vecnormalize.pkl): written to a temporary folder, then renamed
  final/                   the same layout, at the end of the run
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
KEEP_CHECKPOINTS = 2
CONFIG_KEYS = ("algo", "preset_name", "seed", "preset")


class CheckpointError(ValueError):
    """A checkpoint is missing or cannot be loaded; the message says which and why."""


class RunDir:
    """Paths and atomic writes of one run directory.

    :param path: the run directory
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_file = self.path / "config.json"
        self.tb_dir = self.path / "tb"
        self.checkpoint_dir = self.path / "checkpoints"
        self.final_dir = self.path / "final"

    def monitor_dir(self, start_step: int) -> Path:
        """Monitor files of the start at ``start_step`` (Monitor truncates existing files, so one folder each)."""
        return self.path / "monitor" / f"from-{start_step}"

    # ---------------------------------------------------------------------------------------- config
    def write_config(self, config: dict[str, Any]) -> None:
        """Write ``config`` (with :data:`CONFIG_KEYS`) atomically."""
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def read_config(self) -> dict[str, Any]:
        if not self.config_file.is_file():
            raise CheckpointError(f"{self.path} is not a run directory (no config.json); nothing to resume")
        try:
            config = json.loads(self.config_file.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{self.config_file} is corrupt ({err})") from None
        missing = [key for key in CONFIG_KEYS if key not in config]
        if missing:
            raise CheckpointError(f"{self.config_file} is corrupt (no {', '.join(missing)})")
        return config

    def is_run(self) -> bool:
        """Whether ``path`` holds a run (so that ``--force`` may delete it)."""
        return self.config_file.is_file()

    # ----------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, model: BaseAlgorithm, folder: Path | None = None) -> Path:
        """Save ``model`` (and its VecNormalize statistics) as ``checkpoints/step_<n>`` or ``folder``.

        The files are written to a temporary folder beside the target and renamed into place, so a crash
        leaves either the old checkpoint or the new one, never half of one. Older step checkpoints beyond
        the last :data:`KEEP_CHECKPOINTS` are removed.
        """
        target = folder or self.checkpoint_dir / f"step_{model.num_timesteps:012d}"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        model.save(tmp / MODEL_FILE)
        venv = model.get_vec_normalize_env()
        if venv is not None:
            venv.save(str(tmp / VECNORMALIZE_FILE))
        if target.exists():  # same step saved twice (or a new final): swap, then drop the old one
            old = Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
        if folder is None:
            for stale in self.checkpoints()[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(stale, ignore_errors=True)
        return target

    def checkpoints(self) -> list[Path]:
        """Complete step checkpoints, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        return sorted(p for p in self.checkpoint_dir.glob("step_*") if p.is_dir())

    def latest_checkpoint(self) -> Path:
        found = self.checkpoints()
        if not found:
            raise CheckpointError(f"no checkpoint in {self.checkpoint_dir}; nothing to resume")
        return found[-1]


def load_checkpoint(
    algo_class: type[BaseAlgorithm], checkpoint: Path, venv: VecEnv, device: str = "auto"
) -> BaseAlgorithm:
    """Load a checkpoint folder onto ``venv`` (see :func:`restore_normalization`).

    Any failure (missing file, truncated zip, wrong algorithm, mismatched anchors) becomes one
    :class:`CheckpointError` that names the checkpoint.
    """
    model_file = checkpoint / MODEL_FILE
    if not model_file.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} has no {MODEL_FILE}")
    try:
        return algo_class.load(model_file, env=restore_normalization(checkpoint, venv), device=device)
    except Exception as err:  # SB3 and pickle raise many types for a damaged file; all mean the same here
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"cannot load checkpoint {checkpoint}: {reason}") from None


def restore_normalization(checkpoint: Path, venv: VecEnv) -> VecEnv:
    """``venv`` with the checkpoint's VecNormalize statistics (replacing ``venv``'s own), if it saved any."""
    if not (checkpoint / VECNORMALIZE_FILE).is_file():
        return venv
    inner = venv.venv if isinstance(venv, VecNormalize) else venv
    return VecNormalize.load(str(checkpoint / VECNORMALIZE_FILE), inner)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
