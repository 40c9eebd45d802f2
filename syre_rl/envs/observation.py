"""Observation changes per regime: a fixed random permutation or linear map of the observation vector (Juliani &
Ash 2024), or a fixed random offset added to it (continual Gym control, Muppidi et al. 2024: each element's
offset drawn from a normal of std 2 per level, the first level without one), drawn per regime from the run seed.

The map of regime ``k`` depends only on ``(seed, k mod cycle, kind, dim)``, never on history: a run resumed
anywhere sees the same maps, and with ``cycle = 2`` regimes alternate A, B, A, B with identical A's and B's, so
recovery on a regime seen before can be compared early and late. ``cycle = 0`` draws a new map every regime.

Two wrappers apply the same maps: :class:`ObservationMapWrapper` on one gymnasium env (inside its
:class:`~syre_rl.envs.wrappers.RegimeClock`), and :class:`VecObservationMap` on a vectorized task, which reads
each environment's regime from the task (``regime_index``, and ``info["regime"]["index"]`` for terminal
observations).
"""

from __future__ import annotations

import math
import zlib
from functools import lru_cache
from typing import Any, Literal, SupportsFloat

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from syre_rl.envs.schedule import RegimeSchedule, regime_index

MapKind = Literal["permute", "linear", "offset"]
MAP_KINDS: tuple[str, ...] = ("permute", "linear", "offset")


def map_id(regime: int, cycle: int) -> int:
    """Which map regime ``regime`` uses: ``regime mod cycle``, or ``regime`` itself when ``cycle`` is 0."""
    return regime % cycle if cycle > 0 else regime


@lru_cache(maxsize=256)
def observation_map(kind: str, seed: int, regime: int, dim: int, cycle: int = 0, std: float = 2.0) -> np.ndarray:
    """The map of regime ``regime`` as a ``(dim,)`` index array (``permute``), a ``(dim, dim)`` orthogonal
    matrix (``linear``) or a ``(dim,)`` offset of std ``std``, zero in the first map (``offset``): an
    observation ``x`` becomes ``x[perm]``, ``Q @ x`` or ``x + offset``. Read-only, cached."""
    if kind not in MAP_KINDS:
        raise ValueError(f"observation map must be one of {', '.join(MAP_KINDS)}, got {kind!r}")
    rng = np.random.default_rng([seed, map_id(regime, cycle), zlib.crc32(f"observation-{kind}".encode())])
    if kind == "permute":
        out = rng.permutation(dim)
    elif kind == "offset":
        out = np.zeros(dim, np.float32) if map_id(regime, cycle) == 0 else rng.normal(0.0, std, dim).astype(np.float32)
    else:  # Haar-distributed orthogonal matrix: QR of a Gaussian matrix with the signs of R's diagonal fixed
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        out = (q * np.sign(np.diag(r))).astype(np.float32)
    out.setflags(write=False)
    return out


def apply_map(kind: str, mapping: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """``obs[..., perm]``, ``obs @ Q.T`` or ``obs + offset`` (a batch of rows or one vector), in ``obs``'s dtype."""
    if kind == "permute":
        return obs[..., mapping]
    if kind == "offset":
        return (obs + mapping).astype(obs.dtype, copy=False)
    return (obs @ mapping.T).astype(obs.dtype, copy=False)


def mapped_space(kind: str, space: gym.spaces.Box) -> gym.spaces.Box:
    """A box holding every mapped observation: the widest bound on every element (a permutation moves
    elements around; an orthogonal map keeps the norm, so each element stays within the box's radius; an offset
    of a normal draw has no bound)."""
    if kind == "offset":
        return gym.spaces.Box(-np.inf, np.inf, space.shape, dtype=space.dtype)
    if kind == "permute":
        low = np.full(space.shape, space.low.min(), dtype=space.dtype)
        high = np.full(space.shape, space.high.max(), dtype=space.dtype)
    else:
        radius = float(np.sqrt(np.sum(np.maximum(np.abs(space.low), np.abs(space.high)) ** 2)))
        low = np.full(space.shape, -radius, dtype=space.dtype)
        high = np.full(space.shape, radius, dtype=space.dtype)
    return gym.spaces.Box(low, high, dtype=space.dtype)


def _check(kind: str, space: gym.Space, seed: int, cycle: int, std: float = 2.0) -> None:
    if kind not in MAP_KINDS:
        raise ValueError(f"observation map must be one of {', '.join(MAP_KINDS)}, got {kind!r}")
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"observation maps need a flat Box observation space, got {space}")
    if cycle < 0 or seed < 0:
        raise ValueError(f"cycle and seed must be >= 0, got cycle={cycle}, seed={seed}")
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"the offset's std must be finite and >= 0, got {std}")


class ObservationMapWrapper(gym.Wrapper):
    """Map every observation of one env with its regime's map; ``info["regime"]["observation_map"]`` says which.

    Sits inside the :class:`~syre_rl.envs.wrappers.RegimeClock`, which switches the regime before this reset runs.

    :param env: a flat-Box env
    :param schedule: the shared schedule
    :param kind: ``permute`` or ``linear``
    :param cycle: maps repeat every ``cycle`` regimes (0: a new map every regime)
    :param std: std of the ``offset`` kind's draws
    """

    def __init__(
        self, env: gym.Env, schedule: RegimeSchedule, kind: MapKind, cycle: int = 0, std: float = 2.0
    ) -> None:
        super().__init__(env)
        _check(kind, env.observation_space, schedule.seed, cycle, std)
        self.schedule, self.kind, self.cycle, self.std = schedule, kind, cycle, std
        self.observation_space = mapped_space(kind, env.observation_space)

    def _map(self, obs: np.ndarray, info: dict) -> np.ndarray:
        k = self.schedule.index
        info.setdefault("regime", {})["observation_map"] = map_id(k, self.cycle)
        mapping = observation_map(self.kind, self.schedule.seed, k, obs.shape[-1], self.cycle, self.std)
        return apply_map(self.kind, mapping, obs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._map(obs, info), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._map(obs, info), reward, terminated, truncated, info


class VecObservationMap(VecEnvWrapper):
    """The same maps on a vectorized task whose base reports each env's current regime as ``regime_index``.

    Observations after an automatic reset take the new episode's map; ``terminal_observation`` takes the map
    of the regime the episode ran in (``info["regime"]["index"]``), as it would in a single env.

    :param venv: a vectorized task (see :mod:`syre_rl.envs.vector`)
    :param seed: the run seed (the task's schedule seed)
    :param kind: ``permute`` or ``linear``
    :param cycle: maps repeat every ``cycle`` regimes (0: a new map every regime)
    :param std: std of the ``offset`` kind's draws
    """

    def __init__(self, venv: VecEnv, seed: int, kind: MapKind, cycle: int = 0, std: float = 2.0) -> None:
        _check(kind, venv.observation_space, seed, cycle, std)
        super().__init__(venv, observation_space=mapped_space(kind, venv.observation_space))
        self.seed_, self.kind, self.cycle, self.std = seed, kind, cycle, std

    def _map_of(self, regime: int, dim: int) -> np.ndarray:
        return observation_map(self.kind, self.seed_, regime, dim, self.cycle, self.std)

    def _map_rows(self, obs: np.ndarray, regimes: np.ndarray) -> np.ndarray:
        out = np.empty_like(obs)
        for k in np.unique(regimes):
            rows = regimes == k
            mapping = self._map_of(int(k), obs.shape[-1])
            out[rows] = apply_map(self.kind, mapping, obs[rows])
        return out

    def _current(self) -> np.ndarray:
        return np.asarray(self.venv.get_attr("regime_index"))

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        return self._map_rows(obs, self._current())

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        regimes = self._current()
        for info in infos:
            k = regime_index(info)
            info.setdefault("regime", {})["observation_map"] = map_id(k, self.cycle)  # type: ignore[arg-type]
            if "terminal_observation" in info:
                mapping = self._map_of(k, obs.shape[-1])  # type: ignore[arg-type]
                info["terminal_observation"] = apply_map(self.kind, mapping, info["terminal_observation"])
        return self._map_rows(obs, regimes), rewards, dones, infos
