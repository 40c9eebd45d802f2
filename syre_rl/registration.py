"""The gymnasium ids of the continuing tasks, registered as soon as both ``syre_rl`` and gymnasium are imported.

Registration is light (the entry point is a string; PyBullet loads only when an env is made), so ``import
syre_rl`` is enough for ``gym.make("syre_rl/SlipperyAnt-v0")`` and for RL Baselines3 Zoo's
``--gym-packages syre_rl``. Imports only gymnasium.
"""

from __future__ import annotations

import gymnasium as gym

NAMESPACE = "syre_rl"

# Task name (file stem in envs/) -> registered gymnasium id.
TASKS: dict[str, str] = {
    "slippery_ant": f"{NAMESPACE}/SlipperyAnt-v0",
    "slippery_cheetah": f"{NAMESPACE}/SlipperyCheetah-v0",
    "gravity_hopper": f"{NAMESPACE}/GravityHopper-v0",
    "strength_walker": f"{NAMESPACE}/StrengthWalker-v0",
    "drifting_pendulum": f"{NAMESPACE}/DriftingPendulum-v0",
}


def register_envs() -> None:
    """Register every task's id with its default preset (idempotent)."""
    for task, gym_id in TASKS.items():
        if gym_id not in gym.registry:
            gym.register(id=gym_id, entry_point="syre_rl.envs.tasks:make_task_env", kwargs={"task": task})
