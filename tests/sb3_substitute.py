"""pytest plugin for running SB3's and sb3-contrib's own test files with the syre policies.

Loaded with ``-p sb3_substitute``: every string policy name of every algorithm the syre twins serve
(``"MlpPolicy"``, ``"CnnPolicy"``, ``"MultiInputPolicy"``, ``"MlpLstmPolicy"``, ...) resolves to its syre twin, so
SB3's tests build, train, save and load syre policies wherever they name a policy by string.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    from syre_rl.policies.catalog import ALGORITHMS, SYRE_TWINS

    for algorithm in ALGORITHMS:
        aliases = algorithm.policy_aliases
        for alias, base in list(aliases.items()):
            if not alias.startswith("Syre") and base in SYRE_TWINS:
                aliases[alias] = SYRE_TWINS[base]


_BUILT: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    """Count the syre policies the tests build, so the caller can check that the substitution took effect."""
    from syre_rl.policies.mixin import SyreMixin

    attach = SyreMixin._attach_methods

    def counted(self: SyreMixin) -> None:
        _BUILT.append(type(self).__name__)
        attach(self)

    SyreMixin._attach_methods = counted  # type: ignore[method-assign]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("SYRE_SUBSTITUTE_REPORT")
    if path:
        Path(path).write_text("\n".join(_BUILT))
