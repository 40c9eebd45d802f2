"""The one mechanism every policy here shares: attach a method module to each optimizer SB3 built.

A method (syre, or a competing plasticity method from :mod:`syre_rl.methods`) acts through its optimizer's step
hooks. It is a submodule of the *policy* (never of SB3's actor or critic, whose ``state_dict`` SB3 copies between
networks and saves on its own), so its tensors are part of ``policy.state_dict()`` and SB3's ``model.save()`` /
``PPO.load()`` carry them; its settings are constructor parameters, which SB3 saves too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from syre_rl.methods import METHODS as PLASTICITY_METHODS
from syre_rl.methods import PlasticityMethod, make_method
from syre_rl.methods.base import exclude_patterns
from syre_rl.core import Syre

# Decoupled decay (like AdamW: w moves toward its anchor by lr * gamma of the distance per step) toward anchors as
# large as each tensor's own initial spread (so SB3's small-gain output heads keep small anchors). Chosen by evidence
# (docs/results/rl/vec-pendulum): the syre paper's PPO setting (coupled 0.002 toward anchors of std
# 0.01 / sqrt(fan_in)) stopped PPO from learning there and cost half the main job's return; gamma 1.0 kept a little
# more plasticity (not significant over 5 seeds) but cost return on the main job; 0.1 and 0.01 do no harm that 5 seeds
# measure, on the fast task's first regime and on the Ant main job (docs/results/rl/main-job); 0.1 acts more.
DEFAULT_SYRE_KWARGS: dict[str, Any] = {
    "gamma": 0.1,
    "sigma0": 1.0,
    "anchor_scale": "init",
    "spread": 0.0,
    "mode": "decoupled",
}


def peek_seed() -> int:
    """A seed from torch's global generator that leaves the generator where it was, so that building a syre
    policy changes nothing a run draws afterwards (``torch.manual_seed`` still fixes the seed)."""
    with torch.random.fork_rng(devices=[]):
        return int(torch.randint(0, 2**62, (1,)).item())


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

    def _owner_parameters(self, owner: nn.Module, optimizer: torch.optim.Optimizer) -> list[tuple[str, Any]]:
        """The owner's parameters its optimizer trains (SAC's critic optimizer may skip a shared extractor)."""
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        return [(name, p) for name, p in owner.named_parameters() if id(p) in held]

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
        own = self.state_dict()  # type: ignore[attr-defined]
        mismatched = [
            f"size mismatch for {key}: copying a param with shape {tuple(value.shape)} from checkpoint, "
            f"the shape in current model is {tuple(own[key].shape)}."
            for key, value in state_dict.items()
            if key in own and isinstance(value, torch.Tensor) and value.shape != own[key].shape
        ]
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


class SyreMixin(OptimizerMethodMixin):
    """Mix in before an SB3 policy class: ``class P(SyreMixin, ActorCriticPolicy)``.

    :param syre_kwargs: keyword arguments of :class:`~syre_rl.core.Syre` (``gamma``, ``sigma0``, ``spread``,
        ``mode``, ``include``, ``exclude``, ``seed``, ...); missing keys take :data:`DEFAULT_SYRE_KWARGS`. Like
        every method, syre leaves :data:`~syre_rl.methods.base.DEFAULT_EXCLUDE` (SB3's ``log_std``) alone; an
        ``exclude`` adds to it. ``seed=None`` takes a seed from torch's global generator
        without advancing it and records it, so a saved policy rebuilds with the same anchors.
    """

    method_attribute = "syre"

    def __init__(self, *args: Any, syre_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.syre_kwargs = {**DEFAULT_SYRE_KWARGS, **(syre_kwargs or {})}
        if self.syre_kwargs.get("seed") is None:
            self.syre_kwargs["seed"] = peek_seed()
        self._attach_methods()

    def _build_method(self, index: int, owner: nn.Module, optimizer: torch.optim.Optimizer) -> nn.Module:
        kwargs = dict(self.syre_kwargs)
        kwargs["exclude"] = exclude_patterns(kwargs.get("exclude"), kwargs.get("include")) or None
        kwargs["seed"] = (kwargs["seed"] + index) % 2**62  # one anchor seed per optimizer
        syre = Syre(self._owner_parameters(owner, optimizer), **kwargs)
        syre.attach(optimizer)
        return syre

    def _reattach_methods(self) -> None:
        for path, syre in self.method_modules().items():
            syre.attach(self.get_submodule(path).optimizer)  # type: ignore[attr-defined]

    @property
    def syre_modules(self) -> dict[str, Syre]:
        """Owner path -> its Syre (``{"": syre}`` for actor-critic policies), for logging and tests."""
        return self.method_modules()  # type: ignore[return-value]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["syre_kwargs"] = self.syre_kwargs
        return data


class PlasticityMixin(OptimizerMethodMixin):
    """Mix in before an SB3 policy class to train it with a competing plasticity method.

    :param plasticity_method: a name of :data:`syre_rl.methods.METHODS` (``"l2"``, ``"l2-init"``,
        ``"shrink-perturb"``, ``"cbp"``, ``"redo"``, ``"ns-adam"``).
    :param method_kwargs: keyword arguments of that method (reference settings otherwise); an ``exclude`` adds
        to :data:`~syre_rl.methods.base.DEFAULT_EXCLUDE`.
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

    def _build_method(
        self, index: int, owner: nn.Module, optimizer: torch.optim.Optimizer
    ) -> PlasticityMethod:
        return make_method(self.plasticity_method_name, owner, optimizer, **self.method_kwargs)

    def _reattach_methods(self) -> None:  # unpickling
        raise self._not_copyable()

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        raise self._not_copyable()

    def _not_copyable(self) -> TypeError:
        return TypeError(
            f"{type(self).__name__} cannot be copied or unpickled: its {self.plasticity_method_name!r} method keeps "
            "hooks on the optimizer and the network that a copy would not carry over; save and load the model"
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(plasticity_method=self.plasticity_method_name, method_kwargs=self.method_kwargs)
        return data
