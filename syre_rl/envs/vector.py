"""Vectorized continuing tasks: the whole batch of environments steps in one numpy operation.

SB3 on a ``DummyVecEnv`` of gymnasium envs spends most of its time in per-env Python (wrappers, info dicts,
Monitor); a task that steps every environment as rows of arrays removes that, so PPO runs about as fast as its
own updates allow. :class:`VecPendulum` is gymnasium's ``Pendulum-v1`` (same dynamics, reward, initial states and
200-step time limit, checked step for step in the tests) whose gravity and mass change by regime, with the same
:class:`~syre_rl.envs.schedule.RegimeSchedule`, ``info["regime"]`` and ``set_run_step`` as the per-env tasks.

Each environment enters the regime due at its own episode start, as a per-env task does; ``regime_index`` holds
every environment's current regime (after an automatic reset: the new episode's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from syre_rl.envs.schedule import Draw, RegimeSchedule

# Attributes that hold one value per environment: get_attr returns the environment's own entry.
PER_ENV_ATTRIBUTES = frozenset({"regime_index"})


class VecPendulum(VecEnv):
    """``num_envs`` pendulums (swing up and hold) as one SB3 ``VecEnv``; gravity and mass change by regime.

    :param num_envs: environments stepped together
    :param schedule: the run's schedule (``n_envs`` = ``num_envs``: one vector step counts ``num_envs`` run steps)
    :param changes: changed quantity (``gravity``, ``mass``) -> ``(low, high)``
    :param draw: how values are drawn per regime (see :meth:`RegimeSchedule.value`)
    :param seed: env ``i``'s initial states come from ``default_rng(seed + i)``, as gymnasium's
        ``Pendulum-v1`` reset with ``seed + i`` draws them
    """

    NOMINAL: dict[str, float] = {"gravity": 10.0, "mass": 1.0}  # Pendulum-v1's g and m
    max_speed, max_torque, dt, length, episode_steps = 8.0, 2.0, 0.05, 1.0, 200

    def __init__(
        self,
        num_envs: int,
        schedule: RegimeSchedule,
        changes: dict[str, tuple[float, float]],
        draw: Draw = "log-uniform",
        seed: int = 0,
    ) -> None:
        unknown = sorted(set(changes) - set(self.NOMINAL))
        if unknown:
            raise ValueError(f"VecPendulum changes {', '.join(self.NOMINAL)}, not {', '.join(unknown)}")
        if schedule.n_envs != num_envs:
            raise ValueError(f"schedule counts {schedule.n_envs} envs, the task has {num_envs}")
        high = np.array([1.0, 1.0, self.max_speed], dtype=np.float32)
        self.render_mode = None  # read by VecEnv.__init__ through get_attr
        super().__init__(
            num_envs,
            gym.spaces.Box(-high, high, dtype=np.float32),
            gym.spaces.Box(-self.max_torque, self.max_torque, shape=(1,), dtype=np.float32),
        )
        self.schedule, self.changes, self.draw = schedule, dict(changes), draw
        self.theta = np.zeros(num_envs)
        self.speed = np.zeros(num_envs)
        self.t = np.zeros(num_envs, dtype=np.int64)
        self.regime_index = np.zeros(num_envs, dtype=np.int64)
        self.gravity = np.full(num_envs, self.NOMINAL["gravity"])
        self.mass = np.full(num_envs, self.NOMINAL["mass"])
        self._rngs = [np.random.default_rng(seed + i) for i in range(num_envs)]
        self._values: dict[int, dict[str, float]] = {}
        self._actions = np.zeros((num_envs, 1), dtype=np.float32)

    # ------------------------------------------------------------------------------------ regimes
    def regime_values(self, k: int) -> dict[str, float]:
        """The changed quantities' values in regime ``k`` (cached; they depend only on seed and ``k``)."""
        if k not in self._values:
            self._values[k] = {
                q: self.schedule.value(q, lo, hi, self.draw, index=k) for q, (lo, hi) in self.changes.items()
            }
        return self._values[k]

    def set_run_step(self, run_step: int) -> None:
        """Jump to ``run_step``; each env enters the regime due there at its next reset."""
        self.schedule.run_step = run_step

    def _start_episodes(self, envs: np.ndarray) -> None:
        """New episodes for the envs in ``envs`` (indices): regime due now, parameters, initial states."""
        self.schedule.start_episode()
        k = self.schedule.index
        values = {**self.NOMINAL, **self.regime_values(k)}
        self.regime_index[envs] = k
        self.gravity[envs], self.mass[envs] = values["gravity"], values["mass"]
        self.t[envs] = 0
        for i in envs:  # one generator per env, as in gymnasium: a few microseconds per episode start
            if self._seeds[i] is not None:
                self._rngs[i] = np.random.default_rng(self._seeds[i])
            self.theta[i], self.speed[i] = self._rngs[i].uniform(low=[-np.pi, -1.0], high=[np.pi, 1.0])

    def _obs(self) -> np.ndarray:
        return np.stack([np.cos(self.theta), np.sin(self.theta), self.speed], axis=1).astype(np.float32)

    def _info(self, i: int) -> dict[str, Any]:
        k = int(self.regime_index[i])
        return {"regime": {"index": k, **{q: v for q, v in self.regime_values(k).items()}}}

    # ------------------------------------------------------------------------------------- VecEnv
    def reset(self) -> VecEnvObs:
        self._start_episodes(np.arange(self.num_envs))
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [self._info(i) for i in range(self.num_envs)]
        return self._obs()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, 1)

    def step_wait(self) -> VecEnvStepReturn:
        """Pendulum-v1's step as array operations (float64 state, float32 observations)."""
        theta, speed, g, m, ell, dt = self.theta, self.speed, self.gravity, self.mass, self.length, self.dt
        u = np.clip(self._actions[:, 0], -self.max_torque, self.max_torque)
        angle = ((theta + np.pi) % (2 * np.pi)) - np.pi
        costs = angle**2 + 0.1 * speed**2 + 0.001 * u**2
        speed = speed + (3 * g / (2 * ell) * np.sin(theta) + 3.0 / (m * ell**2) * u) * dt
        self.speed = np.clip(speed, -self.max_speed, self.max_speed)
        self.theta = theta + self.speed * dt
        self.t += 1
        self.schedule.advance()
        obs = self._obs()
        rewards = (-costs).astype(np.float32)
        dones = self.t >= self.episode_steps  # a time limit only: truncated, never terminated
        infos = [self._info(i) for i in range(self.num_envs)]
        done = np.flatnonzero(dones)
        if done.size:
            for i in done:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = True
            self._start_episodes(done)
            obs[done] = self._obs()[done]
        return obs, rewards, dones, infos

    def close(self) -> None:
        pass

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seeds for the next reset (env ``i`` gets ``seed + i``); ``None`` keeps the current generators."""
        return super().seed(seed)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        if attr_name in PER_ENV_ATTRIBUTES:
            return [value[i] for i in self._get_indices(indices)]
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if attr_name in PER_ENV_ATTRIBUTES:
            for i in self._get_indices(indices):
                getattr(self, attr_name)[i] = value
        else:
            setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Shared methods (``set_run_step``) act once on the whole batch; one result per index."""
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    def state(self, indices: Iterable[int] | None = None) -> np.ndarray:
        """``(theta, speed)`` rows of the envs in ``indices`` (default all), for tests against Pendulum-v1."""
        idx = np.arange(self.num_envs) if indices is None else np.asarray(list(indices))
        return np.stack([self.theta[idx], self.speed[idx]], axis=1)


# Vectorized bodies a task preset names as ``base_env: vec:<name>``.
VEC_BODIES: dict[str, type[VecEnv]] = {"pendulum": VecPendulum}
