"""Continuing, non-stationary tasks on PyBullet bodies, registered with gymnasium as ``syre_rl/<Name>-v0``.

from syre_rl.envs import make_vec_env, describe_task, RegimeLoggerCallback
venv = make_vec_env("slippery_ant:study", n_envs=1, seed=0)
"""

from __future__ import annotations

import gymnasium as gym
import pybullet_envs_gymnasium  # noqa: F401  (registers AntBulletEnv-v0 and the other bodies)

from syre_rl.envs.callbacks import RegimeLoggerCallback
from syre_rl.envs.quiet import silence_bullet_clients
from syre_rl.envs.schedule import RegimeSchedule
from syre_rl.envs.tasks import (
    TASKS,
    ResolvedEnv,
    TaskPreset,
    describe_task,
    list_tasks,
    load_task,
    make_task_env,
    make_vec_env,
    resolve_env,
    task_names,
)
from syre_rl.envs.wrappers import (
    CHANGES,
    DynamicsWrapper,
    FrictionWrapper,
    GravityWrapper,
    MotorStrengthWrapper,
    RegimeClock,
)

silence_bullet_clients()  # PyBullet prints "argv[0]=" once per connection otherwise

for _task, _gym_id in TASKS.items():
    if _gym_id not in gym.registry:
        gym.register(id=_gym_id, entry_point="syre_rl.envs.tasks:make_task_env", kwargs={"task": _task})

__all__ = [
    "CHANGES",
    "DynamicsWrapper",
    "FrictionWrapper",
    "GravityWrapper",
    "MotorStrengthWrapper",
    "RegimeClock",
    "RegimeLoggerCallback",
    "RegimeSchedule",
    "ResolvedEnv",
    "TASKS",
    "TaskPreset",
    "describe_task",
    "list_tasks",
    "load_task",
    "make_task_env",
    "make_vec_env",
    "resolve_env",
    "task_names",
]
