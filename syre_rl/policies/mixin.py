"""The one mechanism every policy here shares: attach a method module to each optimizer SB3 built.

A method (syre, or a competing plasticity method from :mod:`syre_rl.baselines`) acts through its optimizer's step
hooks. Made a submodule of the policy, its state (anchors, utilities, counters, random state) is part of the
policy's ``state_dict``, so SB3's ``model.save()`` / ``PPO.load()`` carry it and training continues exactly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from syre_rl.baselines import METHODS as PLASTICITY_METHODS
from syre_rl.baselines import PlasticityMethod, make_method
from syre_rl.core import Syre

# Decoupled decay (like AdamW: w moves toward its anchor by lr * gamma of the distance per step) toward anchors as
# large as each tensor's own initial spread (so SB3's small-gain output heads keep small anchors). Chosen by evidence
# (docs/results/rl/vec-pendulum): the syre paper's PPO setting (coupled 0.002 toward anchors of std
# 0.01 / sqrt(fan_in)) stopped PPO from learning there and cost half the main job's return; gamma 1.0 kept a little
# more plasticity (not significant over 5 seeds) but cost return on the main job; 0.1 does no measured harm. PPO's
# log_std is the exploration noise, not a network weight: anchoring it keeps exploration high, so it is left out.
DEFAULT_SYRE_KWARGS: dict[str, Any] = {
    "gamma": 0.1,
    "sigma0": 1.0,
    "anchor_scale": "init",
    "spread": 0.0,
    "mode": "decoupled",
    "exclude": "log_std",
}


class OptimizerMethodMixin:
    """Mix in before an SB3 policy class to attach one method module per optimizer the policy owns.

    SB3 policies build their networks and optimizers inside ``__init__`` (some, like sb3-contrib's recurrent
    policy, replace the optimizer after ``_build``), so the method is attached once the whole constructor has run.
    Each *owner* (the policy itself for actor-critic policies; ``actor`` and ``critic`` for SAC and TD3) gets
    ``owner.<method_attribute>`` beside ``owner.optimizer``.
    """

    # Attribute paths of the modules that own an ``optimizer``; "" is the policy itself.
    method_owners: ClassVar[tuple[str, ...]] = ("",)
    method_attribute: ClassVar[str]

    def _attach_methods(self) -> None:
        for owner in self._method_owner_modules().values():
            setattr(owner, self.method_attribute, self._build_method(owner, owner.optimizer))

    def _build_method(self, owner: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
        raise NotImplementedError

    def _method_owner_modules(self) -> dict[str, nn.Module]:
        return {path: self.get_submodule(path) for path in self.method_owners}  # type: ignore[attr-defined]

    def method_modules(self) -> dict[str, nn.Module]:
        """Owner path -> its method module (``{"": module}`` for actor-critic policies)."""
        return {p: getattr(o, self.method_attribute) for p, o in self._method_owner_modules().items()}


class SyreMixin(OptimizerMethodMixin):
    """Mix in before an SB3 policy class: ``class P(SyreMixin, ActorCriticPolicy)``; each owner gets ``owner.syre``.

    :param syre_kwargs: keyword arguments of :class:`~syre_rl.core.Syre` (``gamma``, ``sigma0``, ``spread``,
        ``mode``, ``include``, ``exclude``, ...); missing keys take :data:`DEFAULT_SYRE_KWARGS`.
    """

    method_attribute = "syre"

    def __init__(self, *args: Any, syre_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.syre_kwargs = {**DEFAULT_SYRE_KWARGS, **(syre_kwargs or {})}
        self._attach_methods()

    def _build_method(self, owner: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        named = [(name, p) for name, p in owner.named_parameters() if id(p) in held]
        syre = Syre(named, **self.syre_kwargs)
        syre.attach(optimizer)
        return syre

    @property
    def syre_modules(self) -> dict[str, Syre]:
        """Owner path -> its Syre (``{"": syre}`` for actor-critic policies), for logging and tests."""
        return self.method_modules()  # type: ignore[return-value]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data["syre_kwargs"] = self.syre_kwargs
        return data


class PlasticityMixin(OptimizerMethodMixin):
    """Mix in before an SB3 policy class to train it with a competing plasticity method; each owner gets
    ``owner.plasticity_method``.

    :param plasticity_method: a name of :data:`syre_rl.baselines.METHODS` (``"l2"``, ``"l2-init"``,
        ``"shrink-perturb"``, ``"cbp"``, ``"redo"``, ``"ns-adam"``).
    :param method_kwargs: keyword arguments of that method (reference settings otherwise).
    """

    method_attribute = "plasticity_method"

    def __init__(
        self,
        *args: Any,
        plasticity_method: str,
        method_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if plasticity_method not in PLASTICITY_METHODS:
            raise ValueError(
                f"plasticity_method must be one of {', '.join(PLASTICITY_METHODS)}, got {plasticity_method!r}"
            )
        super().__init__(*args, **kwargs)
        self.plasticity_method_name = plasticity_method
        self.method_kwargs = dict(method_kwargs or {})
        self._attach_methods()

    def _build_method(self, owner: nn.Module, optimizer: torch.optim.Optimizer) -> PlasticityMethod:
        return make_method(self.plasticity_method_name, owner, optimizer, **self.method_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(plasticity_method=self.plasticity_method_name, method_kwargs=self.method_kwargs)
        return data
