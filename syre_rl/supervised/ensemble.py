"""Several independent networks ("members": seeds or hyperparameters) trained as one batched model.

A stacked linear layer keeps its weights as ``[members, in, out]`` and runs all members with one
``torch.baddbmm``; a stacked convolution is a grouped convolution with one group per member, on inputs laid out
``[batch, members * channels, H, W]``. Nothing mixes members, so the gradient of the summed member losses with
respect to member ``e``'s weights is member ``e``'s own gradient, and one elementwise optimizer (Adam, AdamW, SGD)
over the stacks is exactly ``E`` independent optimizers. This turns ``E`` launch-bound small runs into one run of
larger kernels.

Weight decay and syre differ per member (a weight-decay sweep is ``E`` strengths), so :func:`member_decay` builds
one :class:`syre_rl.core.Syre` with a given per-element ``D`` (``gamma_e`` on member ``e``'s slice) and given
anchors (``sigma0_e * theta0_e``, drawn from member ``e``'s seed, fan-in of the member's layer, not of the stack).
Stacked layers say ``stacked = True``: the competing methods of :mod:`syre_rl.methods` then act per member.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syre_rl.core import Syre
from syre_rl.supervised.data import mix_seed

__all__ = [
    "StackedConv2d",
    "StackedDropout",
    "StackedLinear",
    "member_anchor",
    "member_decay",
    "member_generators",
    "stacked_fan_in",
]


def member_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per member: member ``e``'s initial weights depend on its seed only, not on ``E``."""
    return [torch.Generator().manual_seed(int(seed)) for seed in seeds]


def _uniform_members(shape: tuple[int, ...], bound: float, generators: Sequence[torch.Generator]) -> Tensor:
    """``U(-bound, bound)`` of ``shape`` for every member, stacked: torch's default Linear/Conv initialisation."""
    rows = [torch.rand(shape, generator=g).mul_(2 * bound).sub_(bound) for g in generators]
    return torch.stack(rows)


class StackedLinear(nn.Module):
    """``E`` linear layers: ``x [E, batch, in] -> [E, batch, out]`` with ``weight [E, in, out]``, ``bias [E, 1, out]``.

    :param generators: one per member (see :func:`member_generators`); initialised like ``nn.Linear``.
    """

    stacked = True  # weights [members, ...]: the methods of syre_rl.methods act on each member on its own

    def __init__(self, in_features: int, out_features: int, generators: Sequence[torch.Generator]) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(_uniform_members((in_features, out_features), bound, generators))
        self.bias = nn.Parameter(_uniform_members((1, out_features), bound, generators))

    @property
    def fan_in(self) -> int:
        return self.in_features

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def member(self, e: int) -> nn.Linear:
        """Member ``e`` as a plain ``nn.Linear`` (a copy): for per-member measurements and for tests."""
        layer = nn.Linear(
            self.in_features, self.out_features, device=self.weight.device, dtype=self.weight.dtype
        )
        with torch.no_grad():
            layer.weight.copy_(self.weight[e].T)
            layer.bias.copy_(self.bias[e, 0])
        return layer

    def extra_repr(self) -> str:
        return f"members={self.weight.shape[0]}, in_features={self.in_features}, out_features={self.out_features}"


class StackedConv2d(nn.Module):
    """``E`` convolutions as one grouped convolution: ``[batch, E * in, H, W] -> [batch, E * out, H', W']``.

    ``weight`` is ``[E, out, in, k, k]`` (member-major, so ``view(E * out, in, k, k)`` is free).
    """

    stacked = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        generators: Sequence[torch.Generator],
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.members, self.in_channels, self.out_channels = len(generators), in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        bound = 1 / math.sqrt(self.fan_in)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(_uniform_members(shape, bound, generators))
        self.bias = nn.Parameter(_uniform_members((out_channels,), bound, generators)) if bias else None

    @property
    def fan_in(self) -> int:
        return self.in_channels * self.kernel_size * self.kernel_size

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight.view(-1, self.in_channels, self.kernel_size, self.kernel_size)
        bias = self.bias.view(-1) if self.bias is not None else None
        return F.conv2d(x, weight, bias, self.stride, self.padding, groups=self.members)

    def extra_repr(self) -> str:
        return (
            f"members={self.members}, {self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


class StackedDropout(nn.Module):
    """Dropout with its own rate per member (a dropout sweep in one model): ``x [E, batch, features]``."""

    def __init__(self, rates: Sequence[float]) -> None:
        super().__init__()
        if any(not 0 <= p < 1 for p in rates):
            raise ValueError(f"dropout rates must be in [0, 1), got {list(rates)}")
        self.register_buffer(
            "keep", 1 - torch.tensor(rates, dtype=torch.float32).view(-1, 1, 1), persistent=False
        )

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        keep = self.keep.to(x.dtype)
        return x * (torch.rand_like(x) < keep) / keep


def stacked_fan_in(model: nn.Module) -> dict[str, int]:
    """Fan-in of every stacked weight and bias, by parameter name: the member's layer's fan-in, which torch's
    convention (``shape[1] * receptive field``) gets wrong for ``[E, in, out]`` and ``[E, out, in, k, k]``."""
    fan_in = {}
    for name, module in model.named_modules():
        if isinstance(module, (StackedLinear, StackedConv2d)):
            prefix = f"{name}." if name else ""
            for param_name, param in module.named_parameters(recurse=False):
                if param is not None:
                    fan_in[prefix + param_name] = module.fan_in
    return fan_in


def member_anchor(seed: int, name: str, shape: Sequence[int], std: float) -> Tensor:
    """Member ``seed``'s unit anchor of the tensor ``name`` (one member's slice, ``shape``): ``N(0, std^2)`` drawn on
    the CPU from the seed and the name only, so a member's anchor does not depend on the stack it sits in."""
    gen = torch.Generator().manual_seed(mix_seed(seed, name, "anchor"))
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float64).mul_(std)


def member_decay(
    model: nn.Module,
    gamma: Sequence[float],
    sigma0: Sequence[float],
    *,
    seeds: Sequence[int],
    initial: Sequence[bool] | None = None,
    mode: str = "coupled",
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
) -> Syre:
    """Per-member weight decay toward per-member anchors: one :class:`Syre` whose given ``D`` and anchors hold
    every member's settings, so the decay step is core's own.

    Member ``e`` of each selected tensor is decayed with strength ``gamma_e`` toward ``sigma0_e * theta0_e``
    (``sigma0_e = 0``: plain weight decay; ``gamma_e = 0``: none; both positive: syre), or toward its own
    current (initial) weights where ``initial[e]`` (L2-Init). That is ``Syre(gamma=1)`` with ``D = gamma_e`` and
    those anchors on member ``e``'s slice. ``theta0_e`` has std ``1 / sqrt(fan_in)`` of the member's layer (see
    :func:`stacked_fan_in`) and is drawn from member ``e``'s seed and the tensor's name only
    (:func:`member_anchor`): member ``e`` of a stack gets the anchors it gets trained alone. Anchors and ``D`` are
    buffers of the returned module (checkpoint its ``state_dict``).

    :param model: the stacked model; every selected tensor has the members as its leading dimension
        (member-major, so a batch norm's ``[E * C]`` counts too).
    :param gamma: per-member decay strength, ``[E]``.
    :param sigma0: per-member anchor scale, ``[E]``.
    :param seeds: per-member seed of the anchors, ``[E]`` (the member's own seed).
    :param initial: per-member flag: decay toward the member's weights as they are now (L2-Init).
    :param mode: Syre's ``mode``: ``"coupled"`` (``Adam(weight_decay=)``) or ``"decoupled"`` (AdamW).
    :param include: glob patterns of parameter names to decay (Syre's ``include``), e.g. ``"encoder.*"``.
    :param exclude: glob patterns of parameter names to leave alone.
    """
    members = len(gamma)
    initial = list(initial) if initial is not None else [False] * members
    if not len(sigma0) == len(seeds) == len(initial) == members:
        raise ValueError(
            f"gamma, sigma0, seeds and initial need one value per member, got {len(gamma)}, {len(sigma0)}, "
            f"{len(seeds)} and {len(initial)}"
        )
    options: dict[str, Any] = {"include": include, "exclude": exclude}
    # With seed storage nothing is drawn, so a first Syre only tells which tensors are selected.
    selected = Syre(model, gamma=0.0, anchor_storage="seed", seed=0, **options).param_names
    params = dict(model.named_parameters())
    fan_in = stacked_fan_in(model)
    anchors, diagonals = {}, {}
    for name in selected:
        param = params[name].detach()
        if param.shape[0] % members:
            raise ValueError(
                f"parameter {name!r} of shape {tuple(param.shape)} is not stacked over {members} members"
            )
        per_member = param.double().reshape(
            members, -1
        )  # float64 here, cast to the parameter's dtype by Syre
        std = 1 / math.sqrt(fan_in.get(name, 1))
        rows = [
            per_member[e].clone()
            if initial[e]
            else member_anchor(seeds[e], name, (per_member.shape[1],), std).to(param.device).mul_(sigma0[e])
            for e in range(members)
        ]
        column = {"dtype": torch.float64, "device": param.device}
        strength = torch.tensor(list(gamma), **column).view(-1, 1)
        anchors[name] = torch.stack(rows).view(param.shape)
        diagonals[name] = strength.expand_as(per_member).reshape(param.shape)
    return Syre(model, gamma=1.0, mode=mode, anchors=anchors, diagonals=diagonals, seed=0, **options)
