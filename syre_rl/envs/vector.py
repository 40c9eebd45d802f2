"""Vectorized continuing tasks: the whole batch of environments steps in one numpy operation.

SB3 on a ``DummyVecEnv`` of gymnasium envs spends most of its time in per-env Python (wrappers, info dicts,
Monitor); a task that steps every environment as rows of arrays removes that, so PPO runs about as fast as its
own updates allow. Two bodies, each gymnasium's environment as array operations (same dynamics, rewards, initial
states and time limit, checked step for step in the tests), with the same
:class:`~syre_rl.envs.schedule.RegimeSchedule`, ``info["regime"]`` and ``set_run_step`` as the per-env tasks:
:class:`VecPendulum` (``Pendulum-v1``; gravity and mass change by regime) and :class:`VecCartPole`
(``CartPole-v1``; gravity, pole mass and length, push force).

Each environment enters the regime due at its own episode start, as a per-env task does; ``regime_index`` holds
every environment's current regime (after an automatic reset: the new episode's).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from syre_rl.envs.schedule import Draw, RegimeSchedule

# Attributes that hold one value per environment: get_attr returns the environment's own entry.
PER_ENV_ATTRIBUTES = frozenset({"regime_index"})


class VecTask(VecEnv):
    """A batch of one body's environments as one SB3 ``VecEnv``; its physical quantities change by regime.

    A subclass sets :attr:`NOMINAL` (the quantities a task may change and their usual values), the size of its
    physical state, its spaces (:meth:`spaces`) and its physics: :meth:`_initial_state`, :meth:`_physics` and
    :meth:`_obs`.

    :param num_envs: environments stepped together
    :param schedule: the run's schedule (``n_envs`` = ``num_envs``: one vector step counts ``num_envs`` run steps)
    :param changes: changed quantity -> ``(low, high)``
    :param draw: how values are drawn per regime (see :meth:`RegimeSchedule.value`)
    :param seed: env ``i``'s initial states come from ``default_rng(seed + i)``, as gymnasium's environment
        reset with ``seed + i`` draws them
    """

    NOMINAL: ClassVar[dict[str, float]]
    episode_steps: ClassVar[int]
    state_size: ClassVar[int]

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
            raise ValueError(f"{type(self).__name__} changes {', '.join(self.NOMINAL)}, not {', '.join(unknown)}")
        if schedule.n_envs != num_envs:
            raise ValueError(f"schedule counts {schedule.n_envs} envs, the task has {num_envs}")
        self.render_mode = None  # read by VecEnv.__init__ through get_attr
        observation_space, action_space = self.spaces()
        super().__init__(num_envs, observation_space, action_space)
        self._state = np.zeros((num_envs, self.state_size))  # float64, as gymnasium
        self.schedule, self.changes, self.draw = schedule, dict(changes), draw
        self.t = np.zeros(num_envs, dtype=np.int64)
        self.regime_index = np.zeros(num_envs, dtype=np.int64)
        self.params = {q: np.full(num_envs, v) for q, v in self.NOMINAL.items()}
        self._rngs = [np.random.default_rng(seed + i) for i in range(num_envs)]
        self._values: dict[int, dict[str, float]] = {}
        self._actions = np.zeros((num_envs, *action_space.shape), dtype=action_space.dtype)

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
        for q, v in values.items():
            self.params[q][envs] = v
        self.t[envs] = 0
        for i in envs:  # one generator per env, as in gymnasium: a few microseconds per episode start
            if self._seeds[i] is not None:
                self._rngs[i] = np.random.default_rng(self._seeds[i])
            self._initial_state(i, self._rngs[i])

    def _info(self, i: int) -> dict[str, Any]:
        k = int(self.regime_index[i])
        return {"regime": {"index": k, **{q: v for q, v in self.regime_values(k).items()}}}

    # -------------------------------------------------------------------------------------- physics
    @classmethod
    def spaces(cls) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        """The observation and action spaces, gymnasium's environment's."""
        raise NotImplementedError

    def _initial_state(self, i: int, rng: np.random.Generator) -> None:
        """Draw env ``i``'s initial state from its generator, as gymnasium's ``reset`` does."""
        raise NotImplementedError

    def _physics(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step of every env: ``(rewards, terminated)``; the state advances in place."""
        raise NotImplementedError

    def _obs(self) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------- VecEnv
    def reset(self) -> VecEnvObs:
        self._start_episodes(np.arange(self.num_envs))
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [self._info(i) for i in range(self.num_envs)]
        return self._obs()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=self.action_space.dtype).reshape(self._actions.shape)

    def step_wait(self) -> VecEnvStepReturn:
        rewards, terminated = self._physics(self._actions)
        self.t += 1
        self.schedule.advance()
        obs = self._obs()
        truncated = (self.t >= self.episode_steps) & ~terminated
        dones = terminated | truncated
        infos = [self._info(i) for i in range(self.num_envs)]
        done = np.flatnonzero(dones)
        if done.size:
            for i in done:
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i])
            self._start_episodes(done)
            obs[done] = self._obs()[done]
        return obs, rewards.astype(np.float32), dones, infos

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
        """The physical state's rows of the envs in ``indices`` (default all), for tests against gymnasium."""
        idx = np.arange(self.num_envs) if indices is None else np.asarray(list(indices))
        return self._state[idx]


class VecPendulum(VecTask):
    """``num_envs`` pendulums (swing up and hold, ``Pendulum-v1``); gravity and mass change by regime.

    Arguments as :class:`VecTask`. :meth:`state` rows are ``(theta, speed)``.
    """

    NOMINAL: ClassVar[dict[str, float]] = {"gravity": 10.0, "mass": 1.0}  # Pendulum-v1's g and m
    max_speed, max_torque, dt, length = 8.0, 2.0, 0.05, 1.0
    episode_steps = 200  # a time limit only: truncated, never terminated
    state_size = 2  # theta, speed

    @classmethod
    def spaces(cls) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        high = np.array([1.0, 1.0, cls.max_speed], dtype=np.float32)
        torque = gym.spaces.Box(-cls.max_torque, cls.max_torque, shape=(1,), dtype=np.float32)
        return gym.spaces.Box(-high, high, dtype=np.float32), torque

    def _initial_state(self, i: int, rng: np.random.Generator) -> None:
        self._state[i] = rng.uniform(low=[-np.pi, -1.0], high=[np.pi, 1.0])

    def _obs(self) -> np.ndarray:
        theta, speed = self._state[:, 0], self._state[:, 1]
        return np.stack([np.cos(theta), np.sin(theta), speed], axis=1).astype(np.float32)

    def _physics(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pendulum-v1's step as array operations (float64 state, float32 observations)."""
        theta, speed = self._state[:, 0], self._state[:, 1]
        g, m, ell, dt = self.params["gravity"], self.params["mass"], self.length, self.dt
        u = np.clip(actions[:, 0], -self.max_torque, self.max_torque)
        angle = ((theta + np.pi) % (2 * np.pi)) - np.pi
        costs = angle**2 + 0.1 * speed**2 + 0.001 * u**2
        speed = speed + (3 * g / (2 * ell) * np.sin(theta) + 3.0 / (m * ell**2) * u) * dt
        speed = np.clip(speed, -self.max_speed, self.max_speed)
        self._state = np.stack([theta + speed * dt, speed], axis=1)
        return -costs, np.zeros(self.num_envs, dtype=bool)


class VecCartPole(VecTask):
    """``num_envs`` cart-poles (balance, ``CartPole-v1``: reward 1 per step, 500-step limit); gravity, pole mass
    and length and the push force may change by regime.

    Arguments as :class:`VecTask`. :meth:`state` rows are ``(x, x_dot, theta, theta_dot)``.
    """

    NOMINAL: ClassVar[dict[str, float]] = {"gravity": 9.8, "masspole": 0.1, "length": 0.5, "force_mag": 10.0}
    masscart, tau, x_threshold = 1.0, 0.02, 2.4
    theta_threshold = 12 * 2 * math.pi / 360
    episode_steps = 500
    state_size = 4  # x, x_dot, theta, theta_dot

    @classmethod
    def spaces(cls) -> tuple[gym.spaces.Space, gym.spaces.Space]:
        big = np.finfo(np.float32).max
        high = np.array([cls.x_threshold * 2, big, cls.theta_threshold * 2, big], dtype=np.float32)
        return gym.spaces.Box(-high, high, dtype=np.float32), gym.spaces.Discrete(2)

    def _initial_state(self, i: int, rng: np.random.Generator) -> None:
        self._state[i] = rng.uniform(low=-0.05, high=0.05, size=(4,))

    def _obs(self) -> np.ndarray:
        return self._state.astype(np.float32)

    def _physics(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CartPole-v1's Euler step as array operations."""
        x, x_dot, theta, theta_dot = self._state.T
        p = self.params
        total_mass = p["masspole"] + self.masscart
        polemass_length = p["masspole"] * p["length"]
        force = np.where(actions == 1, p["force_mag"], -p["force_mag"])
        cos, sin = np.cos(theta), np.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
        theta_acc = (p["gravity"] * sin - cos * temp) / (
            p["length"] * (4.0 / 3.0 - p["masspole"] * cos**2 / total_mass)
        )
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * x_acc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc
        self._state = np.stack([x, x_dot, theta, theta_dot], axis=1)
        terminated = (np.abs(x) > self.x_threshold) | (np.abs(theta) > self.theta_threshold)
        return np.ones(self.num_envs), terminated


# Vectorized bodies a task preset names as ``base_env: vec:<name>``.
VEC_BODIES: dict[str, type[VecTask]] = {"pendulum": VecPendulum, "cartpole": VecCartPole}
