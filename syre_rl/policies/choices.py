"""Each method of the one registry (:data:`syre_rl.methods.METHODS`) as the SB3 policy that carries it: the one
place a method name maps to its class (the registry) and to its policy (here).

This is the one place a method plugs into model building (:func:`syre_rl.rl.model.build_model`):
:data:`POLICY_CHOICES` maps every registry name to a function ``(algo, preset, policy_kwargs) -> (policy,
policy_kwargs)`` that returns the SB3 policy (class or alias) and the policy kwargs to use. ``scripts/train_ppo.py``
offers one flag per name but ``none`` (``--syre``, ``--l2``, ``--l2-init``, ``--shrink-perturb``, ``--cbp``,
``--redo``, ``--ns-adam``), its docstring as the help text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from stable_baselines3.common.policies import BasePolicy

from syre_rl import methods as plasticity
from syre_rl.core import SyreConfig
from syre_rl.policies.catalog import (
    PlasticityActorCriticPolicy,
    PlasticitySACPolicy,
    SyreActorCriticPolicy,
    SyreSACPolicy,
)


class MethodSettings(Protocol):
    """What a chooser reads of a preset (an RL agent preset has both): syre's settings and every other
    method's keyword arguments by name."""

    syre: SyreConfig
    method_kwargs: dict[str, dict[str, Any]]


PolicyChoice = tuple[str | type[BasePolicy], dict[str, Any]]
PolicyChooser = Callable[[str, MethodSettings, dict[str, Any]], PolicyChoice]

# The syre policy that replaces each algorithm's MlpPolicy.
SYRE_POLICIES: dict[str, type[BasePolicy]] = {
    "ppo": SyreActorCriticPolicy,
    "a2c": SyreActorCriticPolicy,
    "sac": SyreSACPolicy,
}


def plain(algo: str, preset: MethodSettings, policy_kwargs: dict[str, Any]) -> PolicyChoice:
    """The algorithm's own ``MlpPolicy`` (with the preset's ``weight_decay``, if any)."""
    return "MlpPolicy", policy_kwargs


def syre(algo: str, preset: MethodSettings, policy_kwargs: dict[str, Any]) -> PolicyChoice:
    """Train with syre: decay toward fixed random anchors (settings: the preset's syre group)."""
    return SYRE_POLICIES[algo], {**policy_kwargs, "syre_kwargs": preset.syre}


# The policy that carries a competing method (syre_rl.methods) for each algorithm.
PLASTICITY_POLICIES: dict[str, type[BasePolicy]] = {
    "ppo": PlasticityActorCriticPolicy,
    "a2c": PlasticityActorCriticPolicy,
    "sac": PlasticitySACPolicy,
}


def competing(name: str) -> PolicyChooser:
    """The policy chooser of the competing method ``name``, its class's first docstring line as the help."""

    def method(algo: str, preset: MethodSettings, policy_kwargs: dict[str, Any]) -> PolicyChoice:
        return PLASTICITY_POLICIES[algo], {
            **policy_kwargs,
            "plasticity_method": name,
            "method_kwargs": dict(preset.method_kwargs.get(name, {})),
        }

    doc = (plasticity.METHODS[name].__doc__ or name).strip().splitlines()[0]
    method.__doc__ = doc.replace("%", "%%")  # argparse formats help strings
    return method


# ``none`` is SB3's own policy and ``syre`` the Syre policies (syre settings: the preset's syre group); every
# other name of the registry is carried by the Plasticity policies.
POLICY_CHOICES: dict[str, PolicyChooser] = {
    name: {"none": plain, "syre": syre}.get(name) or competing(name) for name in plasticity.METHODS
}
