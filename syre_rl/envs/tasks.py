"""Continuing tasks: presets (``envs/<task>.yaml``), construction, and the one ``make_vec_env`` scripts use.

A task is a PyBullet (or classic-control) body whose dynamics change by regime. ``TASK[:PRESET]`` names a
preset of ``envs/<TASK>.yaml``; every number lives there and is read only through :func:`load_preset`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

from syre_rl.envs.observation import MAP_KINDS, ObservationMapWrapper, VecObservationMap
from syre_rl.envs.schedule import Draw, RegimeSchedule
from syre_rl.envs.vector import VEC_BODIES
from syre_rl.envs.wrappers import CHANGES, RegimeClock
from syre_rl.presets import PresetError, build_preset, load_preset, preset_dir, preset_names
from syre_rl.registration import NAMESPACE, TASKS

TASK_DIR = preset_dir("envs")
# Vectorized tasks (base_env ``vec:<body>``, see syre_rl.envs.vector): built as a whole VecEnv, not registered.
VEC_TASKS: dict[str, str] = {
    "vec_pendulum": f"{NAMESPACE}/VecPendulum",
    "continual_cartpole": f"{NAMESPACE}/VecCartPole",
}
VEC_PREFIX = "vec:"


@dataclass
class TaskPreset:
    """Schema of one task preset.

    :param base_env: gymnasium id of the body, e.g. ``AntBulletEnv-v0``
    :param changes: changed quantity -> ``[low, high]`` (quantities: friction, gravity, motor_strength)
    :param change_every: run steps between regime changes (the change waits for the next episode end)
    :param regimes: how many regimes a full run sees; the run is ``change_every * regimes`` steps
    :param draw: ``log-uniform`` values per regime, or ``alternate`` between low and high
    :param observation: ``none``, or a fixed random map of the observation per regime: ``permute`` (a
        permutation of its elements), ``linear`` (an orthogonal matrix) or ``offset`` (a vector added to it, zero
        in the first regime), see :mod:`syre_rl.envs.observation`
    :param observation_cycle: the maps repeat every this many regimes (2: A, B, A, B; 0: a new map each regime)
    :param observation_std: std of the ``offset`` draws (per element)
    :param description: one line for listings
    """

    base_env: str
    changes: dict[str, list[float]]
    change_every: int
    regimes: int
    draw: Draw = "log-uniform"
    observation: str = "none"
    observation_cycle: int = 0
    observation_std: float = 2.0
    description: str = ""

    @property
    def vectorized(self) -> bool:
        """Whether the body is a vectorized task (``vec:<body>``) rather than a gymnasium id."""
        return self.base_env.startswith(VEC_PREFIX)

    def __post_init__(self) -> None:
        if self.observation not in ("none", *MAP_KINDS):
            raise ValueError(
                f"field 'observation' must be one of none, {', '.join(MAP_KINDS)}, got {self.observation!r}"
            )
        if self.observation_cycle < 0:
            raise ValueError(f"field 'observation_cycle' must be >= 0, got {self.observation_cycle}")
        quantities = CHANGES
        if self.vectorized:
            body = self.base_env.removeprefix(VEC_PREFIX)
            if body not in VEC_BODIES:
                raise ValueError(
                    f"field 'base_env': unknown vectorized body {body!r}; choose from {', '.join(VEC_BODIES)}"
                )
            quantities = VEC_BODIES[body].NOMINAL  # type: ignore[attr-defined]
        if self.change_every < 1:
            raise ValueError(f"field 'change_every' must be >= 1, got {self.change_every}")
        if self.regimes < 1:
            raise ValueError(f"field 'regimes' must be >= 1, got {self.regimes}")
        if not self.changes and self.observation == "none":
            raise ValueError("field 'changes' must name at least one quantity (or set 'observation')")
        if not (math.isfinite(self.observation_std) and self.observation_std >= 0):
            raise ValueError(f"field 'observation_std' must be finite and >= 0, got {self.observation_std!r}")
        for quantity, bounds in self.changes.items():
            if quantity not in quantities:
                raise ValueError(
                    f"field 'changes': unknown quantity {quantity!r}; choose from {', '.join(quantities)}"
                )
            ok = isinstance(bounds, (list, tuple)) and len(bounds) == 2
            ok = ok and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
            if not ok or not 0 < bounds[0] <= bounds[1]:
                raise ValueError(
                    f"field 'changes': {quantity} needs [low, high] with 0 < low <= high, got {bounds!r}"
                )

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """Changed quantity -> (low, high) as floats."""
        return {q: (float(lo), float(hi)) for q, (lo, hi) in self.changes.items()}

    @property
    def total_steps(self) -> int:
        return self.change_every * self.regimes


def task_names() -> list[str]:
    return list(TASKS)


def load_task(task: str, preset: str = "default") -> TaskPreset:
    """Load preset ``preset`` of task ``task`` (ValueError naming the available tasks if ``task`` is unknown)."""
    if task not in TASKS and task not in VEC_TASKS:
        raise ValueError(f"unknown task {task!r}; available tasks: {', '.join([*TASKS, *VEC_TASKS])}")
    return load_preset(TASK_DIR / f"{task}.yaml", preset, TaskPreset)


def make_task_env(
    task: str,
    preset: str = "default",
    seed: int = 0,
    n_envs: int = 1,
    start_step: int = 0,
    render_mode: str | None = None,
    **overrides: Any,
) -> gym.Env:
    """Build one environment of a task: base env, one change wrapper per quantity, the clock outermost.

    :param task: task name (file stem in ``envs/``)
    :param preset: preset name in that file
    :param seed: fixes the regime sequence (the same for every env of a run)
    :param n_envs: lockstep envs in the run, so that each step here counts ``n_envs`` run steps
    :param start_step: run step to start at (a resumed run passes the step it resumes from)
    :param render_mode: passed to the base env
    :param overrides: preset fields to replace, e.g. ``change_every=100`` in tests
    """
    cfg = _with_overrides(task, preset, overrides)
    if cfg.vectorized:
        raise ValueError(f"{task} is a vectorized task: build it with make_vec_env")
    schedule = RegimeSchedule(cfg.change_every, seed, n_envs=n_envs, start_step=start_step)
    env = gym.make(cfg.base_env, render_mode=render_mode)
    for quantity, (low, high) in cfg.ranges.items():
        env = CHANGES[quantity](env, schedule, low, high, cfg.draw)
    if cfg.observation != "none":
        env = ObservationMapWrapper(env, schedule, cfg.observation, cfg.observation_cycle, cfg.observation_std)  # type: ignore[arg-type]
    return RegimeClock(env, schedule)


def _with_overrides(task: str, preset: str, overrides: dict[str, Any]) -> TaskPreset:
    cfg = load_task(task, preset)
    if overrides:
        fields = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
        cfg = build_preset(TaskPreset, {**fields, **overrides}, f"{task}:{preset} with overrides")
    return cfg


def make_vec_task(
    task: str,
    preset: str = "default",
    seed: int = 0,
    n_envs: int = 1,
    start_step: int = 0,
    **overrides: Any,
) -> VecEnv:
    """Build a vectorized task: the body stepping all ``n_envs`` at once, its observation map if any.

    Arguments as :func:`make_task_env`; the result has no Monitor (:func:`make_vec_env` adds a ``VecMonitor``).
    """
    cfg = _with_overrides(task, preset, overrides)
    if not cfg.vectorized:
        raise ValueError(f"{task} is not a vectorized task: build it with make_task_env")
    schedule = RegimeSchedule(cfg.change_every, seed, n_envs=n_envs, start_step=start_step)
    body = VEC_BODIES[cfg.base_env.removeprefix(VEC_PREFIX)]
    venv: VecEnv = body(n_envs, schedule, cfg.ranges, cfg.draw, seed=seed)  # type: ignore[call-arg]
    if cfg.observation != "none":
        venv = VecObservationMap(venv, seed, cfg.observation, cfg.observation_cycle, cfg.observation_std)  # type: ignore[arg-type]
    return venv


@dataclass(frozen=True)
class ResolvedEnv:
    """What an ``env`` argument names: a gymnasium id and its kwargs, plus the task preset if it is one."""

    name: str
    gym_id: str
    kwargs: dict[str, Any]
    task: TaskPreset | None = None

    def describe(self) -> str:
        if self.task is None:
            return f"{self.name}: gymnasium env {self.gym_id} (stationary)"
        t = self.task
        changes = ", ".join(f"{q} {t.draw} in [{lo:g}, {hi:g}]" for q, (lo, hi) in t.ranges.items())
        if t.observation == "offset":
            changes += f"{'; ' if changes else ''}observation offset of std {t.observation_std:g} (none in regime 0)"
        elif t.observation != "none":
            repeat = f"repeating every {t.observation_cycle}" if t.observation_cycle else "new each regime"
            changes += f"; observation {t.observation}d ({repeat})"
        return (
            f"{self.name}: {self.gym_id} on {t.base_env}; {changes}; change every {t.change_every:,} steps; "
            f"{t.regimes} regimes = {t.total_steps:,} steps"
        )


def resolve_env(env: str) -> ResolvedEnv:
    """Resolve ``TASK``, ``TASK:PRESET``, a ``syre_rl/...`` id (its default preset) or any gymnasium id."""
    by_id = {gym_id: task for task, gym_id in TASKS.items()}
    task, _, preset = env.partition(":")
    if task in by_id:
        task = by_id[task]
    if task in TASKS or task in VEC_TASKS:
        preset = preset or "default"
        gym_id = TASKS.get(task) or VEC_TASKS[task]
        return ResolvedEnv(
            f"{task}:{preset}", gym_id, {"task": task, "preset": preset}, load_task(task, preset)
        )
    if not preset and env in gym.registry:
        return ResolvedEnv(env, env, {})
    raise ValueError(
        f"unknown environment {env!r}: give a gymnasium id (e.g. AntBulletEnv-v0) or TASK[:PRESET] "
        f"with TASK one of: {', '.join([*TASKS, *VEC_TASKS])}"
    )


def describe_task(env: str) -> str:
    """One line saying what ``env`` resolves to: id, changes, change_every, regimes and total steps."""
    return resolve_env(env).describe()


def list_tasks() -> str:
    """Every task and its presets, one line each, for ``--help`` style listings."""
    lines = []
    for task in [*TASKS, *VEC_TASKS]:
        for preset in preset_names(TASK_DIR / f"{task}.yaml"):
            lines.append(describe_task(f"{task}:{preset}"))
    return "\n".join(lines)


def make_vec_env(
    env: str,
    n_envs: int,
    seed: int,
    *,
    start_step: int = 0,
    monitor_dir: str | None = None,
    vec_env_cls: type[VecEnv] = DummyVecEnv,
    env_kwargs: dict[str, Any] | None = None,
) -> VecEnv:
    """The one way scripts build environments: ``n_envs`` Monitor-wrapped copies of ``env`` in a VecEnv.

    :param env: a gymnasium id, or a task preset ``TASK`` / ``TASK:PRESET`` (see :func:`resolve_env`)
    :param n_envs: lockstep environments; for a task, each vector step counts ``n_envs`` run steps
    :param seed: env ``i`` resets with ``seed + i``; a task's regime sequence is fixed by ``seed``
    :param start_step: run step a resumed run starts at, so that it sees the same regimes
    :param monitor_dir: where Monitor writes its CSV files (None: no files)
    :param vec_env_cls: ``DummyVecEnv`` or ``SubprocVecEnv`` (a vectorized task is its own VecEnv)
    :param env_kwargs: extra kwargs for the env (for a task: preset fields to override)
    """
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    resolved = resolve_env(env)
    kwargs = {**resolved.kwargs, **(env_kwargs or {})}
    if resolved.task is not None:
        kwargs.update(seed=seed, n_envs=n_envs, start_step=start_step)
    if resolved.task is not None and resolved.task.vectorized:
        venv = make_vec_task(**kwargs)
        venv.seed(seed)
        filename = None
        if monitor_dir is not None:
            os.makedirs(monitor_dir, exist_ok=True)
            filename = os.path.join(monitor_dir, "vec")
        return VecMonitor(venv, filename=filename, info_keywords=())
    return sb3_make_vec_env(
        f"{__package__}:{resolved.gym_id}",  # "module:id": worker processes (SubprocVecEnv) import it to register
        n_envs=n_envs,
        seed=seed,
        monitor_dir=monitor_dir,
        env_kwargs=kwargs,
        vec_env_cls=vec_env_cls,
    )


__all__ = [
    "PresetError",
    "ResolvedEnv",
    "TASKS",
    "TaskPreset",
    "VEC_TASKS",
    "describe_task",
    "list_tasks",
    "load_task",
    "make_task_env",
    "make_vec_env",
    "make_vec_task",
    "resolve_env",
    "task_names",
]
