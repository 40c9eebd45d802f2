"""Stable-Baselines3 policies that carry syre: drop-in replacements for SB3's and sb3-contrib's policies.

    from stable_baselines3 import PPO
    from syre_rl.policies import SyreActorCriticPolicy
    model = PPO(SyreActorCriticPolicy, env, policy_kwargs=dict(syre_kwargs=dict(gamma=2e-3, sigma0=0.01)))

Each class is SB3's class plus :class:`SyreMixin`: after SB3 has built the networks (orthogonal init done)
and the optimizer, a :class:`~syre_rl.core.Syre` is attached to every optimizer the policy owns. The anchors are
buffers of the policy, so ``model.save()`` / ``PPO.load()`` keep them bit for bit. The ``Plasticity*`` classes
carry a competing method from :mod:`syre_rl.baselines` the same way (``policy_kwargs=dict(plasticity_method="cbp")``).
"""

from __future__ import annotations

from syre_rl.policies.mixin import DEFAULT_SYRE_KWARGS, OptimizerMethodMixin, PlasticityMixin, SyreMixin
from syre_rl.policies.off_policy import PlasticitySACPolicy, SyreSACPolicy, SyreTD3Policy
from syre_rl.policies.on_policy import (
    PlasticityActorCriticPolicy,
    SyreActorCriticCnnPolicy,
    SyreActorCriticPolicy,
    SyreMaskableActorCriticPolicy,
    SyreMultiInputActorCriticPolicy,
    SyreRecurrentActorCriticPolicy,
)

__all__ = [
    "DEFAULT_SYRE_KWARGS",
    "OptimizerMethodMixin",
    "PlasticityMixin",
    "PlasticityActorCriticPolicy",
    "PlasticitySACPolicy",
    "SyreMixin",
    "SyreActorCriticPolicy",
    "SyreActorCriticCnnPolicy",
    "SyreMultiInputActorCriticPolicy",
    "SyreRecurrentActorCriticPolicy",
    "SyreMaskableActorCriticPolicy",
    "SyreSACPolicy",
    "SyreTD3Policy",
]
