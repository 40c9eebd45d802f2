"""syre_rl: remove parameter symmetries from neural networks (Ziyin, Xu & Chuang, ICLR 2025).

``syre_rl.core`` holds the method and imports only torch. The Stable-Baselines3 parts load only when used:
``from syre_rl import SyreActorCriticPolicy`` imports SB3 at that moment, not at ``import syre_rl``.
"""

from __future__ import annotations

import importlib
from typing import Any

from syre_rl.core import Syre

__version__ = "0.1.0"

# Public names that live in modules with heavy imports (SB3, gymnasium, pybullet), loaded on first access.
_LAZY: dict[str, str] = {
    "SyreActorCriticPolicy": "syre_rl.policies",
    "SyreActorCriticCnnPolicy": "syre_rl.policies",
    "SyreMultiInputActorCriticPolicy": "syre_rl.policies",
    "SyreRecurrentActorCriticPolicy": "syre_rl.policies",
    "SyreMaskableActorCriticPolicy": "syre_rl.policies",
    "SyreSACPolicy": "syre_rl.policies",
    "SyreTD3Policy": "syre_rl.policies",
    "PlasticityActorCriticPolicy": "syre_rl.policies",
    "PlasticitySACPolicy": "syre_rl.policies",
    "make_method": "syre_rl.baselines",
}

__all__ = ["Syre", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'syre_rl' has no attribute {name!r}")
