"""Syre (and competing-method) versions of the actor-critic policies of PPO, A2C and sb3-contrib's TRPO, RecurrentPPO and MaskablePPO.

TRPO steps the actor by a natural-gradient line search without the optimizer, so there syre acts through the
optimizer's steps on the value function only.
"""

from __future__ import annotations

from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    MultiInputActorCriticPolicy,
)

from syre_rl.policies.mixin import PlasticityMixin, SyreMixin


class SyreActorCriticPolicy(SyreMixin, ActorCriticPolicy):
    """``MlpPolicy`` of PPO, A2C and TRPO, with syre on its optimizer."""


class SyreActorCriticCnnPolicy(SyreMixin, ActorCriticCnnPolicy):
    """``CnnPolicy`` of PPO, A2C and TRPO, with syre on its optimizer."""


class SyreMultiInputActorCriticPolicy(SyreMixin, MultiInputActorCriticPolicy):
    """``MultiInputPolicy`` of PPO, A2C and TRPO, with syre on its optimizer."""


class SyreRecurrentActorCriticPolicy(SyreMixin, RecurrentActorCriticPolicy):
    """``MlpLstmPolicy`` of RecurrentPPO, with syre on its optimizer (LSTM weights included)."""


class SyreMaskableActorCriticPolicy(SyreMixin, MaskableActorCriticPolicy):
    """``MlpPolicy`` of MaskablePPO, with syre on its optimizer."""


class PlasticityActorCriticPolicy(PlasticityMixin, ActorCriticPolicy):
    """``MlpPolicy`` of PPO and A2C trained with a competing plasticity method (``plasticity_method="redo"``...)."""
