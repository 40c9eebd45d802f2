"""The plasticity figure for RL: how well a continuing agent still learns a new regime, against a fresh agent.

At each regime ``k`` of a continuing task the *regime return* is the mean return of the episodes that end in the
last ``tail`` fraction of the regime's steps (after ``(1 - tail) * change_every`` steps of learning in it). The
*plasticity figure* of regime ``k`` is the continuing agent's regime return minus that of a freshly initialised
agent trained ``change_every`` steps on the same regime (same seed, same settings, the run's env started at
regime ``k``). Zero means the continuing agent learns the new regime as well as a fresh network; it falls below
zero when the agent has lost plasticity, and it can be above zero when earlier regimes transfer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from syre_rl.plasticity.callback import PlasticityCallback
from syre_rl.rl.run_dir import RunDir

__all__ = [
    "EpisodeReturnsCallback",
    "RegimeCheckpointCallback",
    "RegimeReturnCallback",
    "RegimeSnapshotCallback",
    "fresh_regime_return",
    "regime_return",
]


def regime_return(episodes: list[tuple[int, int, float]], k: int, change_every: int, tail: float) -> float:
    """Mean return of the episodes ``(run step at its end, regime, return)`` of regime ``k`` that end in the last
    ``tail`` of its steps; NaN when there are none."""
    lo, hi = (k + 1 - tail) * change_every, (k + 1) * change_every
    returns = [r for step, regime, r in episodes if regime == k and lo < step <= hi]
    return float(np.mean(returns)) if returns else float("nan")


class EpisodeReturnsCallback(BaseCallback):
    """Every finished episode of a task as ``(run step at its end, regime, return)`` in ``rows``, run steps
    counted from ``offset`` (a fresh agent's env starts mid-run; the diagnosis counts from 0).

    :param offset: the run step the model's first step counts as
    """

    def __init__(self, offset: int = 0) -> None:
        super().__init__()
        self.offset = offset
        self.rows: list[tuple[int, int, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info and "regime" in info:
                step, k = self.offset + self.num_timesteps, int(info["regime"]["index"])
                self.rows.append((step, k, float(info["episode"]["r"])))
        return True


class RegimeReturnCallback(EpisodeReturnsCallback):
    """Collect every finished episode's return with its regime (``rows``); log ``plasticity/regime_return`` (and
    ``plasticity/return_vs_fresh`` where a fresh agent's regime return is known) once each regime ends.

    :param change_every: run steps per regime (the task's ``change_every``)
    :param tail: fraction of a regime's steps whose episodes count toward its regime return
    :param fresh: regime -> a fresh agent's regime return, for the plasticity figure
    """

    def __init__(self, change_every: int, tail: float = 0.25, fresh: dict[int, float] | None = None) -> None:
        super().__init__(offset=0)
        if change_every < 1 or not 0 < tail <= 1:
            raise ValueError(f"need change_every >= 1 and 0 < tail <= 1, got {change_every}, {tail}")
        self.change_every, self.tail = change_every, tail
        self.fresh = dict(fresh or {})
        self.returns: dict[int, float] = {}

    def _on_step(self) -> bool:
        super()._on_step()
        done = self.num_timesteps // self.change_every  # regimes 0 .. done-1 are over
        for k in range(len(self.returns), done):
            self._close(k)
        return True

    def _close(self, k: int) -> None:
        value = regime_return(self.rows, k, self.change_every, self.tail)
        self.returns[k] = value
        self.logger.record("plasticity/regime_return", value)
        self.logger.record("plasticity/regime", k)
        if k in self.fresh:
            self.logger.record("plasticity/return_vs_fresh", value - self.fresh[k])

    def figure(self) -> dict[int, float]:
        """Regime -> continuing minus fresh regime return, for the regimes with a fresh reference."""
        return {k: v - self.fresh[k] for k, v in self.returns.items() if k in self.fresh}


class RegimeSnapshotCallback(PlasticityCallback):
    """:class:`~syre_rl.plasticity.callback.PlasticityCallback` measured once per regime (at its end), keeping
    the values in ``snapshots`` (regime -> ``plasticity/...`` values) besides logging them."""

    def __init__(self, change_every: int, max_rows: int = 2048) -> None:
        super().__init__(every_n_steps=change_every, max_rows=max_rows)
        self.snapshots: dict[int, dict[str, float]] = {}

    def measure(self) -> dict[str, float]:
        values = super().measure()
        # Armed at the first rollout end at or past a multiple of change_every: the network as regime k-1 left it.
        k = round(self.num_timesteps / self.every_n_steps) - 1
        if k >= 0:
            self.snapshots[k] = values
        return values


class RegimeCheckpointCallback(BaseCallback):
    """Save the agent as each regime leaves it: at the first rollout start at or past every multiple of
    ``change_every`` (before any update on the new regime) and at the end of training, as
    ``checkpoints/step_<n>`` of ``run_dir``.

    :param change_every: run steps per regime
    :param run_dir: the run's directory (its atomic checkpoint writer)
    """

    def __init__(self, change_every: int, run_dir: RunDir) -> None:
        super().__init__()
        self.change_every, self.run_dir = change_every, run_dir
        self.saved: list[Path] = []

    def _on_rollout_start(self) -> None:
        if self.num_timesteps // self.change_every > len(self.saved):
            folder = self.run_dir.checkpoint_dir / f"step_{self.num_timesteps:012d}"
            self.saved.append(self.run_dir.save_checkpoint(self.model, folder))

    def _on_training_end(self) -> None:
        self._on_rollout_start()  # the last regime's end

    def _on_step(self) -> bool:
        return True


def fresh_regime_return(
    make_model: Callable[[VecEnv], BaseAlgorithm],
    make_env: Callable[[int], VecEnv],
    k: int,
    change_every: int,
    tail: float = 0.25,
) -> float:
    """A freshly built agent's regime return on regime ``k``: its env starts at run step ``k * change_every``
    and it trains ``change_every`` steps (the same window as the continuing agent's regime ``k``).

    :param make_model: env -> a fresh model (the seed and settings of the continuing run)
    :param make_env: start step -> the run's env started there
    """
    env = make_env(k * change_every)
    model = make_model(env)
    callback = EpisodeReturnsCallback(k * change_every)
    model.learn(change_every, callback=callback)
    env.close()
    return regime_return(callback.rows, k, change_every, tail)
