"""syre_rl: remove parameter symmetries from neural networks (Ziyin, Xu & Chuang, ICLR 2025).

``syre_rl.core`` holds the method and imports only torch. Every part loads only when used (``import syre_rl``
imports neither torch nor SB3, so a command line rejects bad input at once):
``from syre_rl import SyreActorCriticPolicy`` imports SB3 at that moment, not at ``import syre_rl``. The syre
policies' string names (``PPO("SyreMlpPolicy", env)``) are registered on SB3's and sb3-contrib's algorithms as soon
as both ``syre_rl`` and SB3 are imported, in either order.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

# Public names that live in modules with heavy imports (SB3, gymnasium, pybullet), loaded on first access; every
# ``Syre*Policy`` twin (syre_rl.policies.catalog) is resolved the same way.
_LAZY: dict[str, str] = {
    "Syre": "syre_rl.core",
    "SyreConfig": "syre_rl.core",
    "PlasticityActorCriticPolicy": "syre_rl.policies",
    "PlasticitySACPolicy": "syre_rl.policies",
    "make_method": "syre_rl.methods",
}

__all__ = ["__version__", *_LAZY]

_PACKAGES = ("stable_baselines3", "sb3_contrib")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name.startswith("Syre") and name.endswith("Policy"):
        policies = importlib.import_module("syre_rl.policies")
        if hasattr(policies, name):
            return getattr(policies, name)
    raise AttributeError(f"module 'syre_rl' has no attribute {name!r}")


def _initializing(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _register_envs(finished: str | None = None) -> None:
    """Register the continuing tasks' gymnasium ids (light: :mod:`syre_rl.registration`)."""
    importlib.import_module("syre_rl.registration").register_envs()


def _register_policies(finished: str | None = None) -> None:
    """Import ``syre_rl.policies`` (which registers the string names) unless an import that will do it is under
    way: SB3 or sb3-contrib still executing (its own hook fires when it ends), or ``syre_rl.policies`` itself."""
    if any(_initializing(name) for name in (*_PACKAGES, "syre_rl.policies") if name != finished):
        return
    importlib.import_module("syre_rl.policies")


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Runs :func:`_register_policies` right after SB3 or sb3-contrib finishes importing, and
    :func:`_register_envs` right after gymnasium does."""

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None) -> Any:
        if fullname not in _HOOKS:
            return None
        spec = None  # found by whoever would have found it without us (site-packages, editable installs)
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module: ModuleType) -> None:
            exec_module(module)
            try:
                _HOOKS[fullname](finished=fullname)
            except ImportError as error:  # never break the user's import of SB3 or gymnasium itself
                warnings.warn(f"syre_rl: names not registered after importing {fullname}: {error}", stacklevel=2)

        spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


# Package -> what to register once it has finished importing.
_HOOKS = {**{name: _register_policies for name in _PACKAGES}, "gymnasium": _register_envs}

if any(name in sys.modules for name in _PACKAGES):
    _register_policies()
if "gymnasium" in sys.modules and not _initializing("gymnasium"):
    _register_envs()
if not all(name in sys.modules for name in _HOOKS) and not any(
    isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path
):
    sys.meta_path.insert(0, _RegisterAfterImport())
