"""Stable-Baselines3 policies that carry syre: drop-in replacements for SB3's and sb3-contrib's policies.

    import syre_rl
    from stable_baselines3 import PPO
    model = PPO("SyreMlpPolicy", env, policy_kwargs=dict(syre_kwargs=SyreConfig(gamma=2e-3, sigma0=0.01)))

Every policy alias of PPO, A2C, SAC, TD3, DDPG, DQN, RecurrentPPO, MaskablePPO, TRPO, TQC, CrossQ and QR-DQN has a
twin (SB3's class plus :class:`SyreMixin`, see :mod:`syre_rl.policies.catalog`), registered on its algorithms as
``"Syre" + <alias>`` and importable by class name (``SyreActorCriticPolicy``, ``SyreSACPolicy``,
``SyreTD3CnnPolicy``, ...). After SB3 has built the networks and the optimizers, a :class:`~syre_rl.core.Syre` is
attached to every optimizer the policy owns; the anchors are buffers of the policy, so ``model.save()`` /
``PPO.load()`` keep them bit for bit. The ``Plasticity*`` classes carry any method of :mod:`syre_rl.methods` the
same way (``policy_kwargs=dict(plasticity_method="cbp")``; ``plasticity_method="syre"`` trains exactly as the
``Syre*`` twin with the same settings): both are :class:`MethodMixin`, the twins with the method fixed to syre.
:data:`syre_rl.policies.choices.POLICY_CHOICES` says which policy carries which method for PPO, A2C and SAC.
"""

from __future__ import annotations

from syre_rl.policies import catalog
from syre_rl.policies.catalog import *  # noqa: F403  (the generated twins)
from syre_rl.policies.mixin import (
    DEFAULT_SYRE_KWARGS,
    MethodMixin,
    OptimizerMethodMixin,
    PlasticityMixin,
    SyreMixin,
)

__all__ = [
    "DEFAULT_SYRE_KWARGS",
    "MethodMixin",
    "OptimizerMethodMixin",
    "PlasticityMixin",
    "SyreMixin",
    *catalog.__all__,
]

catalog.register_aliases()
