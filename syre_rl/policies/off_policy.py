"""Syre versions of SAC's and TD3's policies: the actor's and the critic's optimizers each get their own Syre.

The target networks are not trained by an optimizer (Polyak averaging copies the trained ones) and carry no
anchors. SAC's entropy-coefficient optimizer belongs to the algorithm, not the policy, and is left alone.
"""

from __future__ import annotations

from typing import ClassVar

from stable_baselines3.sac.policies import SACPolicy
from stable_baselines3.td3.policies import TD3Policy

from syre_rl.policies.mixin import PlasticityMixin, SyreMixin


class SyreSACPolicy(SyreMixin, SACPolicy):
    """``MlpPolicy`` of SAC with syre on the actor's and the critic's optimizers."""

    method_owners: ClassVar[tuple[str, ...]] = ("actor", "critic")


class SyreTD3Policy(SyreMixin, TD3Policy):
    """``MlpPolicy`` of TD3 with syre on the actor's and the critic's optimizers."""

    method_owners: ClassVar[tuple[str, ...]] = ("actor", "critic")


class PlasticitySACPolicy(PlasticityMixin, SACPolicy):
    """``MlpPolicy`` of SAC with a competing plasticity method on the actor's and the critic's optimizers."""

    method_owners: ClassVar[tuple[str, ...]] = ("actor", "critic")
