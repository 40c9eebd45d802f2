"""Which training method each member of a stacked run uses: the one place where a method is chosen.

A run compares methods side by side in one batched model, so a method is a rule that turns the sweep values of
a preset (weight decays, anchor scales, dropout rates) into members, each with its own settings. Methods that
only change the per-member decay (vanilla, weight decay, syre) or the forward pass (dropout) need nothing else.
A method that acts through optimizer or forward hooks (L2-Init, Shrink & Perturb, CBP, ReDo from
``syre_rl.baselines``) is added here as one more entry of :data:`METHODS` and one branch of
:func:`attach_methods`, which registers its hooks on the run's model and optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from syre_rl.supervised.ensemble import MemberDecay

__all__ = ["METHODS", "Member", "attach_methods", "build_members"]


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
}


def build_members(
    methods: Sequence[str],
    seeds: Sequence[int],
    weight_decay: Sequence[float],
    sigma0: Sequence[float],
    dropout: Sequence[float],
) -> list[Member]:
    """All members of a run: for each method, each of its sweep settings, each seed."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(METHODS)}")
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
) -> MemberDecay | None:
    """Register every member's method on the run's model and optimizer; returns the decay (checkpointed)."""
    gamma = [m.weight_decay for m in members]
    if not any(gamma):
        return None
    decay = MemberDecay(
        model, gamma, [m.sigma0 for m in members], mode=decay_mode, include=include, seed=anchor_seed
    )
    decay.attach(optimizer)
    return decay
