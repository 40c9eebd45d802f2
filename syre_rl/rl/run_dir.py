"""An RL run directory (layout: :mod:`syre_rl.runs`): its config, and atomic checkpoints that are never
written from non-finite weights."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from syre_rl import runs
from syre_rl.cli import MAX_SEED, CheckpointError, CheckpointWriteError, DivergedError
from syre_rl.core import first_non_finite

KEEP_CHECKPOINTS = 2
CONFIG_TYPES: dict[str, type] = {"algo": str, "preset_name": str, "seed": int, "preset": dict}


_STEP_NAME = re.compile(r"step_\d+")


class RunDir:
    """Paths and atomic writes of one RL run directory.

    :param path: the run directory
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_file = self.path / runs.CONFIG
        self.tb_dir = self.path / runs.TB
        self.checkpoint_dir = self.path / runs.CHECKPOINTS
        self.final_dir = self.path / runs.FINAL

    def monitor_dir(self, start_step: int) -> Path:
        """Monitor files of the environments started at ``start_step`` (Monitor truncates files: one folder each)."""
        return self.path / runs.MONITOR / f"from-{start_step}"

    # ---------------------------------------------------------------------------------------- config
    def write_config(self, config: dict[str, Any]) -> None:
        """Write ``config`` (keys :data:`CONFIG_TYPES`) atomically (the marker is the claim's, :func:`runs.claim_run`)."""
        runs.write_json(self.config_file, config, indent=2, sort_keys=True)

    def read_config(self) -> dict[str, Any]:
        """The run's config, with every key present and of the right type (else :class:`CheckpointError`)."""
        if not self.config_file.is_file():
            raise CheckpointError(f"{self.path} is not a run directory (no config.json); nothing to resume")
        try:
            config = json.loads(self.config_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{self.config_file} is corrupt ({err})") from None
        if not isinstance(config, dict):
            raise CheckpointError(f"{self.config_file} is corrupt (not a mapping)")
        missing = [key for key in CONFIG_TYPES if key not in config]
        if missing:
            raise CheckpointError(f"{self.config_file} is corrupt (no {', '.join(missing)})")
        for key, kind in CONFIG_TYPES.items():
            if not isinstance(config[key], kind) or isinstance(config[key], bool):
                raise CheckpointError(
                    f"{self.config_file} is corrupt: {key} must be a {kind.__name__}, got {config[key]!r}"
                )
        if not 0 <= config["seed"] <= MAX_SEED:
            raise CheckpointError(f"{self.config_file} is corrupt: seed {config['seed']} out of range")
        return config

    def check_config(self, checkpoint: Path) -> None:
        """Raise :class:`CheckpointError` naming the first field of ``config.json`` that differs from the copy
        ``checkpoint`` was saved with (a resume continues a run as it was started; older checkpoints hold none)."""
        saved_file = checkpoint / runs.CONFIG
        if not saved_file.is_file():
            return
        try:
            saved = json.loads(saved_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CheckpointError(f"{saved_file} is corrupt ({err})") from None
        changed = _first_difference(saved, self.read_config())
        if changed is not None:
            field, old, new = changed
            raise CheckpointError(
                f"{self.config_file} was edited: {field} is {new!r}, the run was trained with {old!r}; "
                "put it back to resume (or start a new run)"
            )

    # ----------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, model: BaseAlgorithm, folder: Path | None = None) -> Path:
        """Save ``model`` (and its VecNormalize statistics) as ``checkpoints/step_<n>`` or ``folder``.

        The files are written to a temporary folder beside the target and renamed into place, so a crash
        leaves either the old checkpoint or the new one, never half of one. Non-finite weights raise
        :class:`DivergedError` before anything is written. Step checkpoints beyond the last
        :data:`KEEP_CHECKPOINTS` are removed.
        """
        check_finite(model)
        target = folder or self.checkpoint_dir / f"step_{model.num_timesteps:012d}"
        tmp: Path | None = None
        try:
            tmp = runs.temporary_dir(target.parent, target.name)
            model.save(tmp / runs.MODEL_FILE)
            if self.config_file.is_file():  # the settings it was trained with, checked on --resume
                shutil.copy2(self.config_file, tmp / runs.CONFIG)
            venv = model.get_vec_normalize_env()
            if venv is not None:
                venv.save(str(tmp / runs.VECNORMALIZE_FILE))
            runs.replace_dir(tmp, target)
        except OSError as err:  # the temporary folder goes; the previous checkpoints stay as they were
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            reason = err.strerror or (str(err).splitlines() or [type(err).__name__])[0]
            raise CheckpointWriteError(
                f"cannot write checkpoint {target} at step {model.num_timesteps:,}: {reason}"
            ) from None
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


def _first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first (dotted field, old, new) where two JSON values differ, in sorted key order; None if equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = _first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    return None if old == new else (path, old, new)


def check_finite(model: BaseAlgorithm) -> None:
    """Raise :class:`DivergedError` naming the first policy tensor (weight or buffer) that is not finite."""
    name = first_non_finite(model.policy.state_dict().items())
    if name is not None:
        raise DivergedError(f"training diverged at step {model.num_timesteps:,}: {name} is not finite")


def checkpoint_step(checkpoint: Path) -> int:
    """The step of a ``step_<n>`` checkpoint folder (:class:`CheckpointError` for any other name)."""
    if not _STEP_NAME.fullmatch(checkpoint.name):
        raise CheckpointError(
            f"{checkpoint} is not a checkpoint of this toolkit (names are step_<steps>); move it out of "
            f"{checkpoint.parent} to resume"
        )
    return int(checkpoint.name.removeprefix("step_"))


def load_checkpoint(
    algo_class: type[BaseAlgorithm], checkpoint: Path, venv: VecEnv, device: str = "auto"
) -> BaseAlgorithm:
    """Load a checkpoint folder onto ``venv`` (see :func:`restore_normalization`).

    Any failure (missing file, truncated zip, wrong algorithm, mismatched anchors) becomes one
    :class:`CheckpointError` that names the checkpoint.
    """
    model_file = checkpoint / runs.MODEL_FILE
    if not model_file.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} has no {runs.MODEL_FILE}")
    try:
        return algo_class.load(model_file, env=restore_normalization(checkpoint, venv), device=device)
    except Exception as err:  # SB3 and pickle raise many types for a damaged file; all mean the same here
        reason = " ".join(str(err).split())[:300] or type(err).__name__
        raise CheckpointError(f"cannot load checkpoint {checkpoint}: {reason}") from None


def restore_normalization(checkpoint: Path, venv: VecEnv) -> VecEnv:
    """``venv`` with the checkpoint's VecNormalize statistics (replacing ``venv``'s own), if it saved any."""
    if not (checkpoint / runs.VECNORMALIZE_FILE).is_file():
        return venv
    inner = venv.venv if isinstance(venv, VecNormalize) else venv
    return VecNormalize.load(str(checkpoint / runs.VECNORMALIZE_FILE), inner)
