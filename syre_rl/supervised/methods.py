"""Which method each member of a stacked run uses: the one place where a supervised member's method is chosen.

A run compares methods side by side in one batched model. Method names are those of the one registry
(:data:`syre_rl.methods.METHOD_NAMES`); :data:`MEMBER_RULES` turns the sweep values of a preset (weight
decays, anchor scales, dropout rates) and the methods' settings (``method_kwargs``) into members, each with its
own settings and seed. Every method mixes freely with every other in one run:

- ``none``, ``l2`` (swept over ``weight_decay``), ``syre`` (``weight_decay`` x ``sigma0``) and ``l2-init``
  (``method_kwargs['l2-init']['weight_decay']``) are one per-member decay (:func:`member_decay`: strength and
  anchor per member, anchors from each member's own seed);
- ``dropout`` (swept over ``dropout``) changes the forward pass;
- ``shrink-perturb``, ``cbp`` and ``redo`` are the :mod:`syre_rl.methods` classes acting on their members of the
  stacked layers only, each member with its own utilities, counters and generator (seeded by the member's seed);
  their coupled weight decay (the ``weight_decay`` setting) joins the per-member decay.

Member ``e`` of a stack therefore trains exactly as the same method and seed trained alone. ``ns-adam`` is an
optimizer setting shared by all members: set the preset's ``adam_betas: [0.99, 0.99]`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from syre_rl import methods as plasticity
from syre_rl.supervised.data import mix_seed
from syre_rl.supervised.ensemble import member_decay
from syre_rl.supervised.models import stacked_hidden_layers

__all__ = [
    "MEMBER_RULES",
    "UNIT_METHODS",
    "Member",
    "attach_methods",
    "build_members",
    "check_methods",
    "method_metrics",
    "method_seed",
    "method_weight_decay",
    "on_task_change",
]

# Methods of syre_rl.methods built per run, acting on their members' slices of the stacked layers.
UNIT_METHODS = ("shrink-perturb", "cbp", "redo")
# Settings the pipeline gives those methods itself.
_PIPELINE_SETTINGS = ("layers", "members", "seed")
# Methods whose settings come from method_kwargs (the others' from the preset's sweep fields).
_CONFIGURED = ("l2-init", *UNIT_METHODS)


@dataclass(frozen=True)
class Member:
    """One network of a stacked run.

    :param method: a name of :data:`MEMBER_RULES` (the registry's names).
    :param seed: initial weights, batch order, anchors and the method's random draws (members sharing a seed
        share all of them: paired comparisons).
    :param weight_decay: coupled decay strength ``gamma`` (toward 0, the anchor for ``syre``, the initial
        weights for ``l2-init``; a competing method's own weight decay).
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
        if self.method in ("l2", "syre"):
            parts.append(f"wd{self.weight_decay:g}")
        if self.method == "syre":
            parts.append(f"s{self.sigma0:g}")
        if self.method == "dropout":
            parts.append(f"p{self.dropout:g}")
        return "_".join(parts) + f"_seed{self.seed}"


@dataclass(frozen=True)
class Sweep:
    """The values a preset sweeps over and the methods' settings; each method takes what it uses."""

    weight_decay: Sequence[float]
    sigma0: Sequence[float]
    dropout: Sequence[float]
    method_kwargs: Mapping[str, Mapping[str, Any]]


def method_weight_decay(name: str, method_kwargs: Mapping[str, Mapping[str, Any]]) -> float:
    """The coupled weight decay of method ``name``: its ``method_kwargs`` setting, else its class default (0
    for Shrink & Perturb's boundary form, which shrinks only at task boundaries)."""
    kwargs = method_kwargs.get(name, {})
    if name == "shrink-perturb" and kwargs.get("form", "continual") == "boundary":
        return 0.0
    if "weight_decay" in kwargs:
        return float(kwargs["weight_decay"])
    return float(plasticity.METHODS[name].defaults()["weight_decay"])


def _configured(name: str) -> Callable[[Sweep, int], list[Member]]:
    return lambda s, seed: [Member(name, seed, weight_decay=method_weight_decay(name, s.method_kwargs))]


MEMBER_RULES: dict[str, Callable[[Sweep, int], list[Member]]] = {
    "none": lambda s, seed: [Member("none", seed)],
    "l2": lambda s, seed: [Member("l2", seed, weight_decay=wd) for wd in s.weight_decay],
    "syre": lambda s, seed: [
        Member("syre", seed, weight_decay=wd, sigma0=s0) for wd in s.weight_decay for s0 in s.sigma0
    ],
    "dropout": lambda s, seed: [Member("dropout", seed, dropout=p) for p in s.dropout],
    **{name: _configured(name) for name in _CONFIGURED},
}


def _check_value(name: str, key: str, value: Any, default: Any) -> None:
    """A setting must have its default's type (numbers for settings whose default is ``None``)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif key in ("include", "exclude"):
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ValueError(f"field 'method_kwargs': {name}.{key} has the wrong type: {value!r}")


def check_methods(methods: Sequence[str], method_kwargs: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ``ValueError`` (naming the preset field) for methods or method settings a run cannot use."""
    if "ns-adam" in methods:
        raise ValueError(
            "field 'methods': ns-adam is an optimizer setting shared by all members; set adam_betas: [0.99, 0.99]"
        )
    unknown = [m for m in methods if m not in MEMBER_RULES]
    if unknown or not methods:
        raise ValueError(
            f"field 'methods': unknown {unknown or 'empty list'}; choose from {', '.join(MEMBER_RULES)}"
        )
    for name in method_kwargs:
        if name not in _CONFIGURED:
            raise ValueError(
                f"field 'method_kwargs': {name!r} takes no settings here (choose from {', '.join(_CONFIGURED)}; "
                "l2 and syre take the weight_decay and sigma0 fields)"
            )
    plasticity.check_method_kwargs(method_kwargs, exclude=_PIPELINE_SETTINGS)
    for name, kwargs in method_kwargs.items():
        defaults = plasticity.METHODS[name].defaults()
        for key, value in kwargs.items():
            _check_value(name, key, value, defaults[key])
        if name == "shrink-perturb" and kwargs.get("form", "continual") not in plasticity.ShrinkPerturb.FORMS:
            raise ValueError("field 'method_kwargs': shrink-perturb.form must be one of continual, boundary")


def build_members(
    methods: Sequence[str],
    seeds: Sequence[int],
    weight_decay: Sequence[float],
    sigma0: Sequence[float],
    dropout: Sequence[float],
    method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Member]:
    """All members of a run: for each method, each of its sweep settings, each seed."""
    method_kwargs = method_kwargs or {}
    check_methods(methods, method_kwargs)
    sweep = Sweep(weight_decay, sigma0, dropout, method_kwargs)
    members = [member for method in methods for seed in seeds for member in MEMBER_RULES[method](sweep, seed)]
    if not members:
        raise ValueError(
            "the methods and sweep values give no members (an empty weight_decay or dropout list?)"
        )
    return members


def method_seed(member: Member, name: str) -> int:
    """The seed of member's random draws in method ``name``: its own seed's, whatever the stack."""
    return mix_seed(member.seed, name, "method")


def attach_methods(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    members: Sequence[Member],
    *,
    decay_mode: str,
    include: str | Sequence[str] | None,
    method_kwargs: Mapping[str, Mapping[str, Any]],
) -> nn.ModuleDict:
    """Register every member's method on the run's model and optimizer.

    Returns what holds the methods' state (anchors, ``D``, utilities, random state), to checkpoint with the
    model: ``"decay"`` (the per-member decay, a :class:`syre_rl.core.Syre`) when a member decays, and each of
    :data:`UNIT_METHODS` in use under its name. Build it before training: L2-Init anchors the weights it sees.
    """
    attached = nn.ModuleDict()
    gamma = [m.weight_decay for m in members]
    if any(gamma):
        attached["decay"] = member_decay(
            model,
            gamma,
            [m.sigma0 for m in members],
            seeds=[m.seed for m in members],
            initial=[m.method == "l2-init" for m in members],
            mode=decay_mode,
            include=include,
        )
        attached["decay"].attach(optimizer)
    for name in UNIT_METHODS:
        index = [e for e, m in enumerate(members) if m.method == name]
        if not index:
            continue
        kwargs: dict[str, Any] = {**method_kwargs.get(name, {}), "weight_decay": 0.0}  # decay: above
        if name != "shrink-perturb":
            kwargs["layers"] = stacked_hidden_layers(model)
        seeds = [method_seed(members[e], name) for e in index]
        attached[name] = plasticity.make_method(name, model, optimizer, members=index, seed=seeds, **kwargs)
    return attached


def method_metrics(methods: nn.ModuleDict, members: int) -> dict[str, list[float]]:
    """Per-member counts of the unit-resetting methods so far: ``methods/replaced_units`` (CBP) and
    ``methods/reset_units`` (ReDo), summed over layers; 0 for members of other methods."""
    out: dict[str, list[float]] = {}
    for name, key, counts in (("cbp", "replaced_units", "replaced"), ("redo", "reset_units", "resets")):
        if name not in methods:
            continue
        method = methods[name]
        values = [0.0] * members
        for k, e in enumerate(method.members):
            values[e] = float(sum(layer[k] for layer in getattr(method, counts)))
        out[f"methods/{key}"] = values
    return out


def on_task_change(methods: nn.ModuleDict) -> None:
    """Tell every attached method that a new task starts (Shrink & Perturb's boundary form acts then)."""
    for method in methods.values():
        if isinstance(method, plasticity.PlasticityMethod):
            method.on_task_change()
