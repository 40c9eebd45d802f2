"""The one place a plasticity method is chosen by name."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from syre_rl.baselines.base import PlasticityMethod
from syre_rl.baselines.regularizers import L2, L2Init, NSAdam, ShrinkPerturb
from syre_rl.baselines.resets import CBP, ReDo

__all__ = ["METHODS", "make_method"]

METHODS: dict[str, type[PlasticityMethod]] = {
    cls.name: cls for cls in (L2, L2Init, ShrinkPerturb, CBP, ReDo, NSAdam)
}


def make_method(
    name: str, model: nn.Module, optimizer: torch.optim.Optimizer, **kwargs: Any
) -> PlasticityMethod:
    """Build the method ``name`` for ``model`` (reference settings unless ``kwargs`` say otherwise) and attach
    it to ``optimizer``.

    Build it right after the model and its optimizer, before training: L2-Init anchors the weights it sees, and
    CBP/ReDo draw fresh units at the scale of the weights they see.
    """
    if name not in METHODS:
        raise ValueError(f"unknown plasticity method {name!r}; choose from: {', '.join(METHODS)}")
    method = METHODS[name](model, **kwargs)
    method.attach(optimizer)
    return method
