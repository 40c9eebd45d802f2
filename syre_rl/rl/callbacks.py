"""SB3 callbacks of a run: anchor summary in TensorBoard, stop on Ctrl-C, periodic atomic checkpoints with a
divergence check, an evaluation that follows the regime of a changing task, and methods told when the regime
changes."""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat

from syre_rl.methods import PlasticityMethod, ResetHead
from syre_rl.policies.mixin import peek_seed
from syre_rl.rl.run_dir import DivergedError, RunDir, check_finite


class SyreSummaryCallback(BaseCallback):
    """Log the run's syre anchors once at the start of training: ``syre/<key>`` scalars and a text table.

    Keys come from :meth:`syre_rl.core.Syre.summary` (``count``, ``numel``, ``mean_std``, ``gamma``, ...);
    policies with one Syre per optimizer (SAC, TD3) log ``syre/actor/<key>`` and ``syre/critic/<key>``.
    Does nothing for policies without syre.
    """

    def _on_training_start(self) -> None:
        modules = getattr(self.model.policy, "syre_modules", {})
        rows = []
        for owner, syre in modules.items():
            prefix = f"syre/{owner}/" if owner else "syre/"
            for key, value in syre.summary().items():
                if isinstance(value, (int, float)) and key != "seed":  # a 62-bit seed is no useful scalar
                    self.logger.record(prefix + key, value)
                rows.append(f"| {owner or 'policy'} | {key} | {value} |")
        if not rows:
            return
        table = "| optimizer | key | value |\n|---|---|---|\n" + "\n".join(rows)
        for fmt in self.logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.add_text("syre/summary", table, self.num_timesteps)
        self.logger.dump(self.num_timesteps)

    def _on_step(self) -> bool:
        return True


class TaskChangeCallback(BaseCallback):
    """Call ``on_task_change()`` of every plasticity method in the policy when the first env's regime changes
    (``info["regime"]["index"]``): Shrink & Perturb's boundary form and the resets act there. The first regime seen
    (at the start, or after a resume) is no change. Envs without a regime (stationary tasks) never trigger it.

    :param change_reset: glob patterns of policy parameters reset at every change whatever the method (a
        benchmark's :attr:`~syre_rl.rl.agents.AgentPreset.change_reset`), by a
        :class:`~syre_rl.methods.ResetHead` kept outside the policy, so saved models are those of the method
    """

    def __init__(self, change_reset: Sequence[str] = ()) -> None:
        super().__init__()
        self.regime: int | None = None
        self.changes = 0
        self.change_reset = tuple(change_reset)
        self.resetter: ResetHead | None = None

    def _init_callback(self) -> None:
        if self.change_reset and self.resetter is None:
            policy = self.model.policy
            self.resetter = ResetHead(policy, targets=self.change_reset, seed=peek_seed())
            self.resetter.attach(policy.optimizer)

    def _on_step(self) -> bool:
        regime = self.locals["infos"][0].get("regime")
        if not regime or "index" not in regime:
            return True
        if self.regime is not None and regime["index"] != self.regime:
            for module in self.model.policy.modules():
                if isinstance(module, PlasticityMethod):
                    module.on_task_change()
            if self.resetter is not None:
                self.resetter.reset()
            self.changes += 1
        self.regime = regime["index"]
        return True


class StopOnSignalCallback(BaseCallback):
    """Turn SIGINT (Ctrl-C) and SIGTERM into a request to stop; :class:`RunCheckpointCallback` honours it after
    the current update, with a checkpoint.

    A second signal gets the default behaviour (immediate exit), and checkpoints are atomic, so that is safe.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        super().__init__()
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    def _on_training_start(self) -> None:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class RunCheckpointCallback(BaseCallback):
    """Between updates: stop on divergence, checkpoint every ``every`` steps, and stop cleanly on a signal.

    All of it happens at the start of a rollout, that is after the update of the previous one, so a checkpoint
    holds every update made up to its step and a resumed run makes the same updates as an uninterrupted one.
    Counting on ``num_timesteps`` (not on calls) keeps the schedule across resumes and numbers of envs.

    :param run_dir: where checkpoints go
    :param every: environment steps between checkpoints
    :param on_checkpoint: called with ``(step, checkpoint)`` after each periodic checkpoint (the run restarts
        its environments there, exactly as a resume from that checkpoint would)
    :param stop: the run's signal catcher; when it has caught one, the callback saves a checkpoint and stops
    """

    def __init__(
        self,
        run_dir: RunDir,
        every: int,
        on_checkpoint: Callable[[int, Path], None] | None = None,
        stop: StopOnSignalCallback | None = None,
    ) -> None:
        super().__init__()
        self.run_dir, self.every, self.on_checkpoint, self.stop = run_dir, every, on_checkpoint, stop
        self.stopped_at: Path | None = None
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        check_finite(self.model)
        loss = self.logger.name_to_value.get("train/loss")
        if loss is not None and not math.isfinite(loss):
            raise DivergedError(f"training diverged at step {self.num_timesteps:,}: the loss is {loss}")
        step, saved = self.num_timesteps, None
        if step // self.every > self._last // self.every:
            saved = self.run_dir.save_checkpoint(self.model)
            self._last = step
            if self.on_checkpoint is not None and not self._stopping():
                self.on_checkpoint(step, saved)
        if self._stopping():
            self.stopped_at = saved or self.run_dir.save_checkpoint(self.model)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.received is not None

    def _on_step(self) -> bool:
        return self.stopped_at is None


class RegimeSyncedEvalCallback(EvalCallback):
    """SB3's ``EvalCallback`` whose evaluation env is moved to the training run's step before each evaluation.

    An evaluation env of a changing task counts only its own steps, so without this it would stay in the first
    regime; tasks of :mod:`syre_rl.envs` offer ``set_run_step`` for this. Plain gymnasium envs are evaluated as is.
    """

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0 and self._follows_regimes():
            self.eval_env.env_method("set_run_step", self.num_timesteps)
        return super()._on_step()

    def _follows_regimes(self) -> bool:
        try:
            self.eval_env.get_attr("set_run_step", indices=[0])
        except AttributeError:
            return False
        return True
