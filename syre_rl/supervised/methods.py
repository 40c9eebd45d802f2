"""Which training method each member of a stacked run uses: the one place where a method is chosen.

A run compares methods side by side in one batched model, so a method is a rule that turns the sweep values of
a preset (weight decays, anchor scales, dropout rates) into members, each with its own settings. Methods that
only change the per-member decay (vanilla, weight decay, syre) or the forward pass (dropout) mix freely in one
run.

The competing methods of :mod:`syre_rl.baselines` that work on any parameters (:data:`HOOK_METHODS`: L2-Init,
Shrink & Perturb) act through optimizer hooks on whole tensors, hence on every member of the stacked model at
once. A run that uses one of them therefore uses it alone: all its members (one per seed) are that method, and a
comparison with vanilla or syre is a second run with the same seed (same initial weights and batch order per
member seed: paired). CBP and ReDo reset units of ``nn.Linear`` layers found through activation modules; the
stacked layers keep ``[E, in, out]`` weights, so they are not available here (see docs/supervised.md).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from syre_rl import baselines
from syre_rl.supervised.ensemble import member_decay

__all__ = ["HOOK_METHODS", "METHODS", "Member", "attach_methods", "build_members", "check_methods"]

# Methods of syre_rl.baselines that act on whole tensors (every member of the stacked model): a run of their own.
HOOK_METHODS = ("l2-init", "shrink-perturb")
# Methods of syre_rl.baselines that need the unstacked layer layout.
UNSTACKED_ONLY = ("cbp", "redo")


@dataclass(frozen=True)
class Member:
    """One network of a stacked run.

    :param method: a key of :data:`METHODS`.
    :param seed: initial weights and batch order (members sharing a seed share both: paired comparisons).
    :param weight_decay: decay strength ``gamma`` (toward 0 for ``wd``, toward the anchor for ``syre``).
    :param sigma0: anchor scale (0 unless ``syre``).
    :param dropout: dropout rate after each hidden layer (0 unless ``dropout``).
    """

    method: str
    seed: int
    weight_decay: float = 0.0
    sigma0: float = 0.0
    dropout: float = 0.0

    @property
    def name(self) -> str:
        parts = [self.method]
        if self.method in ("wd", "syre"):
            parts.append(f"wd{self.weight_decay:g}")
        if self.method == "syre":
            parts.append(f"s{self.sigma0:g}")
        if self.method == "dropout":
            parts.append(f"p{self.dropout:g}")
        return "_".join(parts) + f"_seed{self.seed}"


@dataclass(frozen=True)
class Sweep:
    """The values a preset sweeps over; each method takes the ones it uses."""

    weight_decay: Sequence[float]
    sigma0: Sequence[float]
    dropout: Sequence[float]


METHODS: dict[str, Callable[[Sweep, int], list[Member]]] = {
    "vanilla": lambda s, seed: [Member("vanilla", seed)],
    "wd": lambda s, seed: [Member("wd", seed, weight_decay=wd) for wd in s.weight_decay],
    "syre": lambda s, seed: [
        Member("syre", seed, weight_decay=wd, sigma0=s0) for wd in s.weight_decay for s0 in s.sigma0
    ],
    "dropout": lambda s, seed: [Member("dropout", seed, dropout=p) for p in s.dropout],
    # Settings come from the preset's method_kwargs, not from the sweep: one setting per run.
    "l2-init": lambda s, seed: [Member("l2-init", seed)],
    "shrink-perturb": lambda s, seed: [Member("shrink-perturb", seed)],
}


def check_methods(methods: Sequence[str], method_kwargs: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ``ValueError`` (naming the preset field) for methods or method settings a run cannot use."""
    unavailable = [m for m in methods if m in UNSTACKED_ONLY]
    if unavailable:
        raise ValueError(
            f"field 'methods': {', '.join(unavailable)} are not available for the stacked model (they reset units "
            "of nn.Linear layers found through activation modules; see docs/supervised.md)"
        )
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(
            f"field 'methods': unknown {unknown or 'empty list'}; choose from {', '.join(METHODS)}"
        )
    hooks = [m for m in methods if m in HOOK_METHODS]
    if hooks and len(set(methods)) > 1:
        raise ValueError(
            f"field 'methods': {hooks[0]} acts on every member of the stacked model, so it must be a run's only "
            f"method, got {list(methods)}; run it as its own run (the same seed gives paired members)"
        )
    for name, kwargs in method_kwargs.items():
        if name not in HOOK_METHODS:
            raise ValueError(f"field 'method_kwargs': {name!r} is not one of {', '.join(HOOK_METHODS)}")
        if not isinstance(kwargs, Mapping):
            raise ValueError(f"field 'method_kwargs': {name} needs a mapping of settings, got {kwargs!r}")
        accepted = [
            p.name
            for p in inspect.signature(baselines.METHODS[name]).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ValueError(
                f"field 'method_kwargs': {name} has no setting {', '.join(unknown)}; it takes {', '.join(accepted)}"
            )
        for key, value in kwargs.items():
            if key not in ("include", "exclude") and (
                isinstance(value, bool) or not isinstance(value, (int, float))
            ):
                raise ValueError(f"field 'method_kwargs': {name}.{key} must be a number, got {value!r}")


def build_members(
    methods: Sequence[str],
    seeds: Sequence[int],
    weight_decay: Sequence[float],
    sigma0: Sequence[float],
    dropout: Sequence[float],
) -> list[Member]:
    """All members of a run: for each method, each of its sweep settings, each seed."""
    check_methods(methods, {})
    sweep = Sweep(weight_decay, sigma0, dropout)
    members = [member for method in methods for seed in seeds for member in METHODS[method](sweep, seed)]
    if not members:
        raise ValueError(
            "the methods and sweep values give no members (an empty weight_decay or dropout list?)"
        )
    return members


def attach_methods(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    members: Sequence[Member],
    *,
    decay_mode: str,
    include: str | Sequence[str] | None,
    anchor_seed: int,
    method_kwargs: Mapping[str, Mapping[str, Any]],
) -> nn.ModuleDict:
    """Register every member's method on the run's model and optimizer.

    Returns what holds the methods' state (anchors, ``D``, random state), to checkpoint with the model:
    ``"decay"`` (the per-member decay, a :class:`syre_rl.core.Syre`) when a member decays, and the run's hook
    method under its name. Build it before training: L2-Init anchors the weights it sees.
    """
    attached = nn.ModuleDict()
    gamma = [m.weight_decay for m in members]
    if any(gamma):
        sigma0 = [m.sigma0 for m in members]
        attached["decay"] = member_decay(
            model, gamma, sigma0, mode=decay_mode, include=include, seed=anchor_seed
        )
        attached["decay"].attach(optimizer)
    for name in dict.fromkeys(m.method for m in members if m.method in HOOK_METHODS):
        kwargs = dict(method_kwargs.get(name, {}))
        if issubclass(baselines.METHODS[name], baselines.SeededMethod):
            kwargs.setdefault(
                "seed", anchor_seed
            )  # seeded by the run: building it draws from no global generator
        attached[name] = baselines.make_method(name, model, optimizer, **kwargs)
    return attached
