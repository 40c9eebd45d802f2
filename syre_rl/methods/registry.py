"""The one registry of methods: every arm of every comparison, RL and supervised, by one name.

``none`` (the baseline), ``syre``, ``l2``, ``l2-init``, ``shrink-perturb``, ``cbp``, ``redo``, ``ns-adam``,
``reset-head`` and ``reset-all`` are
:class:`~syre_rl.methods.base.PlasticityMethod` classes, chosen here by name; ``dropout`` is a forward-pass method
of the supervised (stacked) models only. RL policies, supervised presets, grids, TensorBoard tags and figures all
use these names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from syre_rl.core import SyreConfig
from syre_rl.methods.base import PlasticityMethod
from syre_rl.methods.regularizers import L2, L2Init, NoMethod, NSAdam, ShrinkPerturb, SyreMethod
from syre_rl.methods.reinit import ResetAll, ResetHead
from syre_rl.methods.resets import CBP, ReDo

__all__ = [
    "METHODS",
    "METHOD_NAMES",
    "SUPERVISED_ONLY",
    "check_method_kwargs",
    "make_method",
    "method_settings",
]

METHODS: dict[str, type[PlasticityMethod]] = {
    cls.name: cls
    for cls in (NoMethod, SyreMethod, L2, L2Init, ShrinkPerturb, CBP, ReDo, NSAdam, ResetHead, ResetAll)
}
# Methods that change the forward pass of the stacked supervised models (no optimizer hook).
SUPERVISED_ONLY = ("dropout",)
METHOD_NAMES: tuple[str, ...] = (*METHODS, *SUPERVISED_ONLY)


def method_settings(name: str) -> list[str]:
    """The keyword settings of method ``name`` (what a preset's ``method_kwargs[name]`` may hold)."""
    return list(METHODS[name].defaults()) if name in METHODS else []


def check_method_kwargs(
    method_kwargs: Mapping[str, Any], field: str = "method_kwargs", exclude: tuple[str, ...] = ()
) -> None:
    """Raise ``ValueError`` naming ``field`` for a method name or setting that does not exist.

    :param exclude: settings a caller sets itself (not allowed in the preset).
    """
    for name, kwargs in method_kwargs.items():
        if name not in METHODS:
            raise ValueError(f"field {field!r}: {name!r} is not one of {', '.join(METHODS)}")
        if not isinstance(kwargs, Mapping):
            raise ValueError(f"field {field!r}: {name} needs a mapping of settings, got {kwargs!r}")
        allowed = [s for s in method_settings(name) if s not in exclude]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ValueError(
                f"field {field!r}: {name} has no setting {', '.join(unknown)}; it takes {', '.join(allowed)}"
            )
        if name == "syre":  # its settings are a SyreConfig: its values are checked where they are declared
            try:
                SyreConfig.from_mapping(kwargs)
            except ValueError as err:
                raise ValueError(f"field {field!r}: syre: {err}") from None


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
