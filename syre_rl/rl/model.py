"""Build environments and the SB3 model of a run from an agent preset: the one place methods plug in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from syre_rl.cli import UsageError
from syre_rl.envs import make_vec_env
from syre_rl.policies.choices import POLICY_CHOICES
from syre_rl.policies.layers import activation_class
from syre_rl.rl.config import AgentPreset, OnPolicyPreset

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC}
_SUPPORTED_ACTIONS: dict[str, tuple[type, ...]] = {
    "sac": (gymnasium.spaces.Box,),
    "ppo": (
        gymnasium.spaces.Box,
        gymnasium.spaces.Discrete,
        gymnasium.spaces.MultiDiscrete,
        gymnasium.spaces.MultiBinary,
    ),
    "a2c": (
        gymnasium.spaces.Box,
        gymnasium.spaces.Discrete,
        gymnasium.spaces.MultiDiscrete,
        gymnasium.spaces.MultiBinary,
    ),
}


def make_env(
    preset: AgentPreset,
    *,
    n_envs: int,
    seed: int,
    start_step: int = 0,
    monitor_dir: Path | None = None,
    training: bool = True,
) -> VecEnv:
    """The preset's environment, wrapped in VecNormalize if the preset normalizes.

    Evaluation envs (``training=False``) do not update the statistics and report raw rewards; SB3's
    EvalCallback copies the training statistics into them before each evaluation.

    An environment whose optional dependency is not installed (Box2D, MuJoCo, ...) raises :class:`UsageError`
    saying what to install.
    """
    try:
        venv = make_vec_env(
            preset.env,
            n_envs,
            seed,
            start_step=start_step,
            monitor_dir=str(monitor_dir) if monitor_dir is not None else None,
        )
    except (gymnasium.error.DependencyNotInstalled, ImportError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"environment {preset.env} cannot be made here: {reason}") from None
    if preset.normalize:
        venv = VecNormalize(venv, training=training, norm_reward=training)
    return venv


def policy_kwargs(preset: AgentPreset) -> dict[str, Any]:
    """Network and optimizer settings of the preset, as SB3 ``policy_kwargs``.

    ``optimizer_kwargs`` is always given in full because SB3 sets Adam's eps to 1e-5 only when it is None.
    """
    kwargs: dict[str, Any] = {
        "activation_fn": activation_class(preset.activation, preset.layer_norm),
        "optimizer_kwargs": {
            "betas": tuple(preset.adam_betas),
            "eps": preset.adam_eps,
            "weight_decay": preset.weight_decay,
        },
    }
    if isinstance(preset, OnPolicyPreset):
        kwargs.update(
            net_arch={"pi": list(preset.net_arch), "vf": list(preset.net_arch)},
            ortho_init=preset.ortho_init,
            log_std_init=preset.log_std_init,
        )
    else:
        kwargs["net_arch"] = list(preset.net_arch)
    return kwargs


def build_model(
    algo: str,
    preset: AgentPreset,
    env: VecEnv,
    *,
    seed: int,
    device: str = "auto",
    verbose: int = 0,
) -> BaseAlgorithm:
    """A fresh SB3 model of ``algo`` for ``preset``, its policy chosen by ``preset.method``.

    An algorithm that does not support the environment's action or observation space (SAC on a discrete
    action space) raises ``ValueError`` naming both.
    """
    supported = _SUPPORTED_ACTIONS.get(algo)
    if supported is not None and not isinstance(env.action_space, supported):
        raise ValueError(
            f"{algo} does not support the action space of {preset.env} ({env.action_space}); "
            f"it needs {' or '.join(s.__name__ for s in supported)} actions"
        )
    policy, kwargs = POLICY_CHOICES[preset.method](algo, preset, policy_kwargs(preset))
    try:
        return ALGORITHMS[algo](
            policy,
            env,
            learning_rate=preset.learning_rate,
            gamma=preset.gamma,
            policy_kwargs=kwargs,
            seed=seed,
            device=device,
            verbose=verbose,
            **preset.algorithm_kwargs(),
        )
    except AssertionError as err:  # SB3 checks the observation and action spaces with assert
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "unsupported spaces"
        raise ValueError(f"{algo} cannot run on {preset.env}: {reason}") from None
