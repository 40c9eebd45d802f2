"""The one mechanism every syre policy shares: attach a Syre to each optimizer SB3 built."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import torch
from torch import nn

from syre_rl.core import Syre

# The syre paper's PPO setting (weight decay 0.002 toward anchors of std 0.01 / sqrt(fan_in)), on the network
# weights only: SB3's state-independent ``log_std`` is a distribution parameter with no symmetry to remove, and
# decaying it toward ~0 (std 1) stops PPO from annealing its exploration noise (docs/rl.md).
DEFAULT_SYRE_KWARGS: dict[str, Any] = {
    "gamma": 2e-3,
    "sigma0": 0.01,
    "spread": 0.0,
    "mode": "coupled",
    "exclude": "log_std",
}


def _reattach(syre: Syre, optimizer: torch.optim.Optimizer) -> None:
    """``Optimizer.load_state_dict`` (SB3's ``load``) replaces the param-group dicts whose ``lr`` the
    decoupled mode reads; attaching again makes syre follow the new groups."""
    syre.detach()
    syre.attach(optimizer)


class SyreMixin:
    """Mix in before an SB3 policy class: ``class P(SyreMixin, ActorCriticPolicy)``.

    SB3 policies build their networks and optimizers inside ``__init__`` (some, like sb3-contrib's recurrent
    policy, replace the optimizer after ``_build``), so syre is attached once the whole constructor has run.
    Each *owner* (the policy itself for actor-critic policies; ``actor`` and ``critic`` for SAC and TD3) gets
    ``owner.syre`` beside ``owner.optimizer``, over the parameters that optimizer trains.

    :param syre_kwargs: keyword arguments of :class:`~syre_rl.core.Syre` (``gamma``, ``sigma0``, ``spread``,
        ``mode``, ``include``, ...); missing keys take :data:`DEFAULT_SYRE_KWARGS`.
    """

    # Attribute paths of the modules that own an ``optimizer``; "" is the policy itself.
    syre_owners: ClassVar[tuple[str, ...]] = ("",)

    def __init__(self, *args: Any, syre_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.syre_kwargs = {**DEFAULT_SYRE_KWARGS, **(syre_kwargs or {})}
        for owner in self._syre_owner_modules().values():
            held = {id(p) for group in owner.optimizer.param_groups for p in group["params"]}
            named = [(name, p) for name, p in owner.named_parameters() if id(p) in held]
            owner.syre = Syre(named, **self.syre_kwargs)
            owner.syre.attach(owner.optimizer)
            owner.optimizer.register_load_state_dict_post_hook(partial(_reattach, owner.syre))

    def _syre_owner_modules(self) -> dict[str, nn.Module]:
        return {path: self.get_submodule(path) for path in self.syre_owners}  # type: ignore[attr-defined]

    @property
    def syre_modules(self) -> dict[str, Syre]:
        """Owner path -> its Syre (``{"": syre}`` for actor-critic policies), for logging and tests."""
        return {path: owner.syre for path, owner in self._syre_owner_modules().items()}

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data["syre_kwargs"] = self.syre_kwargs
        return data
