"""The regime schedule shared by the wrappers of one environment: which regime the run is in, and its values.

A run is counted in *run steps*, the unit SB3's ``num_timesteps`` uses: with ``n_envs`` lockstep environments
each environment step is ``n_envs`` run steps. Each environment counts its own steps, so the count needs no
shared memory and works the same in a ``DummyVecEnv`` and a ``SubprocVecEnv``.

The regime due at run step ``s`` is ``s // change_every``; it takes effect at the next episode start, i.e. at
the first episode end after the change time (Dohare et al. 2024). A run resumed at step ``S`` starts an episode
there, so it enters regime ``S // change_every`` at once, exactly as the uninterrupted run did at its first
episode end after the change. Values depend only on ``(seed, regime index, quantity)``, never on history, so
the sequence is fixed by the seed and identical after a resume.
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

Draw = Literal["log-uniform", "alternate"]


class RegimeSchedule:
    """Regime index and run-step counter of one environment, plus the value each quantity takes per regime.

    :param change_every: run steps between regime changes
    :param seed: fixes the sequence of values
    :param n_envs: lockstep environments in the run; each step of this environment is ``n_envs`` run steps
    :param start_step: run step the run starts (or resumes) at
    """

    def __init__(self, change_every: int, seed: int, n_envs: int = 1, start_step: int = 0) -> None:
        if change_every < 1:
            raise ValueError(f"change_every must be >= 1, got {change_every}")
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        self.change_every = change_every
        self.seed = seed
        self.n_envs = n_envs
        self.run_step = start_step
        self.index = start_step // change_every

    def start_episode(self) -> None:
        """Enter the regime due now; called at every reset, the only moment a regime may change."""
        self.index = self.run_step // self.change_every

    def advance(self) -> None:
        """Count one step of this environment."""
        self.run_step += self.n_envs

    def value(
        self, quantity: str, low: float, high: float, draw: Draw = "log-uniform", index: int | None = None
    ) -> float:
        """The value of ``quantity`` in regime ``index`` (default: the current one).

        ``log-uniform`` draws from [low, high] on a log scale, independently per quantity and regime;
        ``alternate`` takes low, high, low, high, ... (a clean A-B-A-B probe of recovery on a regime seen before).
        """
        k = self.index if index is None else index
        if draw == "alternate":
            return float(low if k % 2 == 0 else high)
        if draw == "log-uniform":
            rng = np.random.default_rng([self.seed, k, zlib.crc32(quantity.encode())])
            return float(np.exp(rng.uniform(np.log(low), np.log(high))))
        raise ValueError(f"draw must be 'log-uniform' or 'alternate', got {draw!r}")


def regime_index(info: dict) -> int | None:
    """The regime a step's ``info`` reports (``info["regime"]["index"]``, written by every continuing task), or
    None for a stationary task: the one reader of that key."""
    regime = info.get("regime")
    return int(regime["index"]) if regime and "index" in regime else None
