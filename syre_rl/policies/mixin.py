"""The one mechanism every policy here shares: attach a method module to each optimizer SB3 built.

A method of the registry :mod:`syre_rl.methods` (syre, or a competing plasticity method) acts through its
optimizer's step hooks; :class:`MethodMixin` carries any of them, :class:`SyreMixin` is it with syre fixed. The
method is a submodule of the *policy* (never of SB3's actor or critic, whose ``state_dict`` SB3 copies between
networks and saves on its own), so its tensors are part of ``policy.state_dict()`` and SB3's ``model.save()`` /
``PPO.load()`` carry them; its settings are constructor parameters, which SB3 saves too.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import nn

from syre_rl.core import Syre, SyreConfig, peek_seed, shape_mismatches
from syre_rl.methods import METHODS

__all__ = [
    "DEFAULT_SYRE_KWARGS",
    "MethodMixin",
    "OptimizerMethodMixin",
    "PlasticityMixin",
    "SyreMixin",
    "peek_seed",
]

# Read-only view of syre's defaults, kept for code that imported it: the defaults live in SyreConfig.
DEFAULT_SYRE_KWARGS: Mapping[str, Any] = MappingProxyType(SyreConfig().as_kwargs())


class OptimizerMethodMixin:
    """Mix in before an SB3 policy class to attach one method module per optimizer the policy owns.

    SB3 policies build their networks and optimizers inside ``__init__`` (some, like sb3-contrib's recurrent
    policy, replace the optimizer after ``_build``), so the methods are attached once the whole constructor has
    run. Every module of the policy with an ``optimizer`` attribute is an *owner* (the policy itself for
    actor-critic and DQN policies; ``actor`` and ``critic`` for SAC, TD3, TQC, CrossQ); the method for owner
    ``path`` is the policy's submodule ``<method_attribute>`` (path ``""``) or ``<method_attribute>_<path>``.
    """

    method_attribute: ClassVar[str]

    # ------------------------------------------------------------------------------------------ owners
    def _attach_methods(self) -> None:
        owners = [
            (path, module)
            for path, module in self.named_modules()  # type: ignore[attr-defined]
            if isinstance(getattr(module, "optimizer", None), torch.optim.Optimizer)
        ]
        if not owners:
            raise ValueError(f"{type(self).__name__}: SB3 built no optimizer to attach the method to")
        self._method_owners = tuple(path for path, _ in owners)
        methods = {
            self._method_name(path): self._build_method(i, owner, owner.optimizer)
            for i, (path, owner) in enumerate(owners)
        }
        # The methods come first among the submodules, so SB3's own entries of the state dict keep their order and
        # the last place (SB3's code and tests treat the last entry specially, e.g. CrossQ's step counter).
        self._modules = {**methods, **self._modules}  # type: ignore[has-type]

    def _method_name(self, path: str) -> str:
        return self.method_attribute + ("_" + path.replace(".", "_") if path else "")

    def _build_method(self, index: int, owner: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
        raise NotImplementedError

    def method_modules(self) -> dict[str, nn.Module]:
        """Owner path -> its method module (``{"": module}`` for actor-critic policies)."""
        return {
            path: self.get_submodule(self._method_name(path))  # type: ignore[attr-defined]
            for path in self._method_owners
        }

    def _reattach_methods(self) -> None:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------- state
    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """torch's contract, plus: a shape mismatch anywhere fails before any tensor is copied (torch itself copies
        the matching entries first), so a failed load leaves the policy as it was."""
        mismatched = shape_mismatches(state_dict, self.state_dict())  # type: ignore[attr-defined]
        if mismatched:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(mismatched)
            )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)  # type: ignore[misc]

    # -------------------------------------------------------------------------------------------- copies
    def __setstate__(self, state: dict[str, Any]) -> None:
        # copy.deepcopy and pickle rebuild the policy through here; torch's optimizers come back without step
        # hooks, so each method is attached again to its owner's (copied) optimizer.
        super().__setstate__(state)  # type: ignore[misc]
        self._reattach_methods()


class MethodMixin(OptimizerMethodMixin):
    """Mix in before an SB3 policy class to train it with a method of the registry: ``class P(MethodMixin,
    ActorCriticPolicy)``, then ``P(..., plasticity_method="redo", method_kwargs={"tau": 0.2})``.

    :param plasticity_method: a name of :data:`syre_rl.methods.METHODS` (``"syre"``, ``"l2"``, ``"cbp"``, ...).
    :param method_kwargs: that method's settings (its class's defaults otherwise; for ``"syre"`` a
        :class:`~syre_rl.core.SyreConfig` or a mapping of its fields). An ``exclude`` adds to
        :data:`~syre_rl.methods.base.DEFAULT_EXCLUDE`.

    The method class builds one method module per optimizer (:meth:`~syre_rl.methods.PlasticityMethod.for_optimizer`)
    and says which settings the policy records (:meth:`~syre_rl.methods.PlasticityMethod.policy_settings`: syre
    records every setting and its anchor seed). The module sits under the attribute ``syre`` for syre (a
    :class:`~syre_rl.core.Syre`, as in the ``Syre*`` policies, so the two carry the very same state dict) and
    ``plasticity_method`` for the others. A policy with a method that cannot be copied (hooks on the network)
    refuses deepcopy and pickling; save and load the model instead.
    """

    method_attribute = "plasticity_method"

    def __init__(
        self,
        *args: Any,
        plasticity_method: str,
        method_kwargs: SyreConfig | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if plasticity_method not in METHODS:
            raise ValueError(
                f"plasticity_method must be one of {', '.join(METHODS)}, got {plasticity_method!r}"
            )
        super().__init__(*args, **kwargs)
        self.plasticity_method_name = plasticity_method
        # After SB3 has built the networks: a seed syre takes from torch's global generator is the one the
        # generator holds now (syre peeks at it without advancing it).
        self.method_kwargs = METHODS[plasticity_method].policy_settings(method_kwargs)
        if plasticity_method == "syre":
            self.method_attribute = "syre"
        self._attach_methods()

    def _build_method(self, index: int, owner: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
        return METHODS[self.plasticity_method_name].for_optimizer(owner, optimizer, index, self.method_kwargs)

    @property
    def syre_config(self) -> SyreConfig | None:
        """The syre settings (with the policy's anchor seed), or ``None`` for another method."""
        if self.plasticity_method_name != "syre":
            return None
        return SyreConfig.from_mapping(self.method_kwargs)

    @property
    def syre_modules(self) -> dict[str, Syre]:
        """Owner path -> its Syre (``{"": syre}`` for actor-critic policies; empty for other methods), for
        logging and tests."""
        if self.plasticity_method_name != "syre":
            return {}
        return self.method_modules()  # type: ignore[return-value]

    # -------------------------------------------------------------------------------------------- copies
    def _copyable(self) -> None:
        if not METHODS[self.plasticity_method_name].copyable:
            raise TypeError(
                f"{type(self).__name__} cannot be copied or unpickled: its {self.plasticity_method_name!r} method "
                "keeps hooks on the optimizer and the network that a copy would not carry over; save and load the "
                "model"
            )

    def _reattach_methods(self) -> None:  # unpickling
        self._copyable()
        for path, module in self.method_modules().items():
            module.attach(self.get_submodule(path).optimizer)  # type: ignore[attr-defined]

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        self._copyable()
        reductor = self.__reduce_ex__(4)
        return copy._reconstruct(self, memo, *reductor)  # type: ignore[attr-defined]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(plasticity_method=self.plasticity_method_name, method_kwargs=self.method_kwargs)
        return data


# The name of the first release: the mixin of the Plasticity* policies.
PlasticityMixin = MethodMixin


class SyreMixin(MethodMixin):
    """:class:`MethodMixin` with the method fixed to syre: ``class P(SyreMixin, ActorCriticPolicy)``.

    :param syre_kwargs: a :class:`~syre_rl.core.SyreConfig` or a mapping of its fields (``gamma``, ``sigma0``,
        ``spread``, ``mode``, ``include``, ``exclude``, ``seed``, ...); fields left out take SyreConfig's defaults,
        the same as the registry's syre (``make_method("syre", ...)``). Like every method, syre leaves
        :data:`~syre_rl.methods.base.DEFAULT_EXCLUDE` (SB3's ``log_std``) alone; an ``exclude`` adds to it.
        ``seed=None`` takes a seed from torch's global generator without advancing it and records it, so a saved
        policy rebuilds with the same anchors.
    """

    def __init__(
        self, *args: Any, syre_kwargs: SyreConfig | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, plasticity_method="syre", method_kwargs=syre_kwargs, **kwargs)

    @property
    def syre_kwargs(self) -> dict[str, Any]:
        """Every syre setting and the anchor seed (what SB3 saves as the policy's ``syre_kwargs``)."""
        return self.method_kwargs

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        del data["plasticity_method"]
        data["syre_kwargs"] = data.pop("method_kwargs")
        return data
