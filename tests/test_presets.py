"""The one preset loader: inheritance, type checks and clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from syre_rl.presets import PresetError, load_preset, preset_names


@dataclass
class Example:
    steps: int
    lr: float = 3e-4
    mode: Literal["coupled", "decoupled"] = "coupled"
    layers: list[int] | None = None

    def __post_init__(self) -> None:
        if self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}")


@pytest.fixture
def preset_file(tmp_path):
    path = tmp_path / "example.yaml"
    path.write_text(
        "base:\n  steps: 10\n  lr: 1e-3\n"
        "child:\n  inherit: base\n  mode: decoupled\n  layers: [64, 64]\n"
        "wrong-type:\n  steps: ten\n"
        "unknown-field:\n  steps: 1\n  learning_rate: 0.1\n"
        "negative:\n  steps: -1\n"
        "loop:\n  inherit: loop\n  steps: 1\n"
    )
    return path


def test_inherit_and_types(preset_file) -> None:
    child = load_preset(preset_file, "child", Example)
    assert child == Example(steps=10, lr=1e-3, mode="decoupled", layers=[64, 64])
    assert isinstance(child.lr, float)  # YAML reads 1e-3 as a string; the loader makes it a number
    assert preset_names(preset_file)[:2] == ["base", "child"]


@pytest.mark.parametrize(
    "name,match",
    [
        ("wrong-type", "field 'steps': expected an integer"),
        ("unknown-field", "unknown field.*learning_rate"),
        ("negative", "steps must be positive"),
        ("loop", "inherits from itself"),
        ("absent", "unknown preset 'absent'.*choose one of: base, child"),
    ],
)
def test_errors_name_the_problem(preset_file, name: str, match: str) -> None:
    with pytest.raises(PresetError, match=match):
        load_preset(preset_file, name, Example)


def test_missing_and_malformed_files(tmp_path) -> None:
    with pytest.raises(PresetError, match="not found"):
        load_preset(tmp_path / "nope.yaml", "x", Example)
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(PresetError, match="mapping of preset names"):
        load_preset(bad, "x", Example)
