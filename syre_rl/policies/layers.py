"""Layer-level options of the MLPs in SB3 policies, as ``activation_fn`` classes that every policy accepts.

LayerNorm is the strongest single intervention against loss of plasticity in Lyle et al. (2023, 2024) and is
recommended by Juliani & Ash (2024); SB3 has no switch for it (SB3 issue #1069). Here it is the hidden layer's
activation: ``Linear -> LayerNorm -> activation``, the normalisation without its own gain and bias (the next
Linear layer absorbs both, so the functions the network can express are the same). Each class subclasses its
activation, so everything that finds hidden units by their activation (plasticity measurements, CBP, ReDo) sees
the normalised layer as a hidden layer, and it combines with every method and every SB3 policy:

    PPO("SyreMlpPolicy", env, policy_kwargs=dict(activation_fn=LayerNormReLU))
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "LayerNormLeakyReLU",
    "LayerNormReLU",
    "LayerNormTanh",
    "LeakyReLU01",
    "activation_class",
]


class LeakyReLU01(nn.LeakyReLU):
    """LeakyReLU with negative slope 0.1 (the continual Gym control setting of Muppidi et al. 2024)."""

    def __init__(self) -> None:
        super().__init__(negative_slope=0.1)


def _normalised(x: Tensor) -> Tensor:
    return F.layer_norm(x, x.shape[-1:])


class LayerNormReLU(nn.ReLU):
    """``relu(layer_norm(x))`` over the last dimension, without gain and bias."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(_normalised(x))


class LayerNormTanh(nn.Tanh):
    """``tanh(layer_norm(x))`` over the last dimension, without gain and bias."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(_normalised(x))


class LayerNormLeakyReLU(LeakyReLU01):
    """``leaky_relu(layer_norm(x), 0.1)`` over the last dimension, without gain and bias."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(_normalised(x))


# Preset name -> (plain class, class with LayerNorm).
ACTIVATIONS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "tanh": (nn.Tanh, LayerNormTanh),
    "relu": (nn.ReLU, LayerNormReLU),
    "leaky_relu": (LeakyReLU01, LayerNormLeakyReLU),
}


def activation_class(name: str, layer_norm: bool = False) -> type[nn.Module]:
    """SB3's ``activation_fn`` for a preset's ``activation`` and ``layer_norm``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name][int(layer_norm)]
