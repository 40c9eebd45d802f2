"""Continuing, non-stationary tasks on PyBullet bodies, registered with gymnasium as ``syre_rl/<Name>-v0``.

from syre_rl.envs import make_vec_env, describe_task, regime_index
venv = make_vec_env("slippery_ant:study", n_envs=1, seed=0)
"""

from __future__ import annotations

import sys

from syre_rl.envs.quiet import c_stdout_silenced, silence_bullet_clients

with c_stdout_silenced(sys.__stderr__ or sys.stderr):  # PyBullet prints its build time on import, to the C stderr
    import pybullet  # noqa: F401
    import pybullet_envs_gymnasium  # noqa: F401  (registers AntBulletEnv-v0 and the other bodies)

from syre_rl.envs.observation import ObservationMapWrapper, VecObservationMap, observation_map  # noqa: E402
from syre_rl.envs.schedule import RegimeSchedule, regime_index
from syre_rl.envs.tasks import (
    TASKS,
    ResolvedEnv,
    TaskPreset,
    describe_task,
    list_tasks,
    load_task,
    make_task_env,
    make_vec_env,
    make_vec_task,
    resolve_env,
    task_names,
)
from syre_rl.envs.vector import VecCartPole, VecPendulum, VecTask
from syre_rl.envs.wrappers import (
    CHANGES,
    DynamicsWrapper,
    FrictionWrapper,
    GravityWrapper,
    MotorStrengthWrapper,
    RegimeClock,
)
from syre_rl.registration import register_envs  # noqa: E402

silence_bullet_clients()  # PyBullet prints "argv[0]=" once per connection otherwise

register_envs()

__all__ = [
    "CHANGES",
    "DynamicsWrapper",
    "FrictionWrapper",
    "GravityWrapper",
    "MotorStrengthWrapper",
    "ObservationMapWrapper",
    "RegimeClock",
    "RegimeSchedule",
    "regime_index",
    "ResolvedEnv",
    "TASKS",
    "TaskPreset",
    "describe_task",
    "list_tasks",
    "load_task",
    "make_task_env",
    "VecObservationMap",
    "VecCartPole",
    "VecPendulum",
    "VecTask",
    "make_vec_env",
    "make_vec_task",
    "observation_map",
    "resolve_env",
    "task_names",
]
