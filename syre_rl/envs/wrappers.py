"""One small gymnasium wrapper per change; all of them read one shared :class:`RegimeSchedule`.

Stack the change wrappers on the base env and :class:`RegimeClock` outermost::

    schedule = RegimeSchedule(change_every=100_000, seed=0)
    env = RegimeClock(FrictionWrapper(gym.make("AntBulletEnv-v0"), schedule, 0.02, 2.0), schedule)

Each change wrapper applies its value after every ``reset()`` (PyBullet scenes reset gravity on every
episode, so applying once is not enough) and writes it into ``info["regime"]`` on every step; the clock
counts steps, switches the regime at episode starts and adds ``info["regime"]["index"]``.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

from syre_rl.envs.schedule import Draw, RegimeSchedule


class RegimeClock(gym.Wrapper):
    """Drives the schedule: one ``advance`` per step, a possible regime switch at each reset."""

    def __init__(self, env: gym.Env, schedule: RegimeSchedule) -> None:
        super().__init__(env)
        self.schedule = schedule

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self.schedule.start_episode()
        obs, info = self.env.reset(seed=seed, options=options)
        info.setdefault("regime", {})["index"] = self.schedule.index
        return obs, info

    def set_run_step(self, run_step: int) -> None:
        """Jump to ``run_step``; the regime due there starts at the next reset. An evaluation env calls this
        (``VecEnv.env_method("set_run_step", model.num_timesteps)``) to follow the training run's regime."""
        self.schedule.run_step = run_step

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.schedule.advance()
        info.setdefault("regime", {})["index"] = self.schedule.index
        return obs, reward, terminated, truncated, info


class DynamicsWrapper(gym.Wrapper):
    """Base of the change wrappers: set ``quantity`` to the schedule's value after every reset.

    :param env: the environment to change
    :param schedule: the shared schedule
    :param low: lower end of the range (``alternate``: the even regimes' value)
    :param high: upper end of the range (``alternate``: the odd regimes' value)
    :param draw: how values are drawn per regime (see :meth:`RegimeSchedule.value`)
    """

    quantity: str = ""

    def __init__(
        self, env: gym.Env, schedule: RegimeSchedule, low: float, high: float, draw: Draw = "log-uniform"
    ) -> None:
        super().__init__(env)
        if not 0 < low <= high:
            raise ValueError(f"{self.quantity}: need 0 < low <= high, got low={low}, high={high}")
        self.schedule = schedule
        self.low, self.high, self.draw = low, high, draw
        self.current: float | None = None

    def apply(self, value: float) -> None:
        """Write ``value`` into the simulator."""
        raise NotImplementedError

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.current = self.schedule.value(self.quantity, self.low, self.high, self.draw)
        self.apply(self.current)
        info.setdefault("regime", {})[self.quantity] = self.current
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info.setdefault("regime", {})[self.quantity] = self.current
        return obs, reward, terminated, truncated, info


def _solid_links(p: Any, body: int) -> list[int]:
    """Links of ``body`` (base = -1) with mass: the MJCF loader's massless links are joint helpers without
    collision shapes, whose friction never matters (``getCollisionShapeData`` crashes on them, so mass it is)."""
    return [link for link in range(-1, p.getNumJoints(body)) if p.getDynamicsInfo(body, link)[0] > 0]


class FrictionWrapper(DynamicsWrapper):
    """Effective ground friction of a PyBullet locomotion task.

    Bullet multiplies the lateral frictions of the two bodies in contact. The robot keeps its own friction
    (ant 1.5, the planar walkers 0.8); the ground gets ``value / robot_friction`` so that every robot-ground
    contact has exactly the effective coefficient ``value``.
    """

    quantity = "friction"

    def apply(self, value: float) -> None:
        base = self.env.unwrapped
        p = base._p
        body = base.robot.objects[0]
        frictions = {p.getDynamicsInfo(body, link)[1] for link in _solid_links(p, body)}
        if len(frictions) != 1:
            raise ValueError(f"{self.quantity}: robot links have different frictions {sorted(frictions)}")
        robot_friction = frictions.pop()
        for ground in base.stadium_scene.ground_plane_mjcf:
            p.changeDynamics(ground, -1, lateralFriction=value / robot_friction)


class GravityWrapper(DynamicsWrapper):
    """Gravitational acceleration (m/s^2, pointing down): PyBullet scenes or classic-control ``g``."""

    quantity = "gravity"

    def apply(self, value: float) -> None:
        base = self.env.unwrapped
        if hasattr(base, "stadium_scene"):  # PyBullet: the scene sets 9.8 at every reset, before this runs
            base._p.setGravity(0, 0, -value)
        elif hasattr(base, "g"):  # classic control (Pendulum)
            base.g = value
        else:
            raise ValueError(f"{self.quantity}: {type(base).__name__} has no gravity to change")


class MotorStrengthWrapper(DynamicsWrapper):
    """Scale of the robot's joint torques (1 = the task's own motors; below 1 weaker, above 1 stronger)."""

    quantity = "motor_strength"

    def __init__(
        self, env: gym.Env, schedule: RegimeSchedule, low: float, high: float, draw: Draw = "log-uniform"
    ) -> None:
        super().__init__(env, schedule, low, high, draw)
        self.nominal_power = float(self.env.unwrapped.robot.power)

    def apply(self, value: float) -> None:
        self.env.unwrapped.robot.power = self.nominal_power * value


CHANGES: dict[str, type[DynamicsWrapper]] = {
    w.quantity: w for w in (FrictionWrapper, GravityWrapper, MotorStrengthWrapper)
}
