"""The shape the project promises: short scripts over package commands, short functions, packages that import
each other in one direction, every command a module of the one lifecycle, and a README that lists the tree."""

from __future__ import annotations

import ast
import graphlib
import importlib
from pathlib import Path

import pytest

from syre_rl.lifecycle import COMMANDS, TRAINING
from syre_rl.presets import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "syre_rl"
SCRIPTS = PROJECT_ROOT / "scripts"
BENCH = SCRIPTS / "bench"  # benchmarks and probes: measurements, read top to bottom
MAX_SCRIPT_LINES = 40
MAX_FUNCTION_LINES = 80


def code_lines(source: list[str], first: int, last: int, skip: set[int]) -> int:
    """Lines from ``first`` to ``last`` that are neither blank, comments, nor docstrings."""
    return sum(
        1 for i in range(first, last + 1) if i not in skip and source[i - 1].strip() and not source[i - 1].strip().startswith("#")
    )  # fmt: skip


def docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                lines |= set(range(body[0].lineno, body[0].end_lineno + 1))  # type: ignore[operator]
    return lines


def python_files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*.py"))


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_every_script_outside_the_benchmarks_is_a_few_lines_over_a_package_command(script):
    path = SCRIPTS / script
    source = path.read_text()
    tree = ast.parse(source)
    lines = code_lines(source.splitlines(), 1, len(source.splitlines()), docstring_lines(tree))
    assert lines <= MAX_SCRIPT_LINES, f"{script}: {lines} code lines"


def test_no_function_is_longer_than_80_code_lines():
    long = []
    for path in python_files(PACKAGE, SCRIPTS):
        source = path.read_text()
        tree = ast.parse(source)
        skip = docstring_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = code_lines(source.splitlines(), node.lineno, node.end_lineno or node.lineno, skip)
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PROJECT_ROOT)}:{node.name} ({n})")
    assert not long, long


def package_imports() -> dict[str, set[str]]:
    """First-level unit of ``syre_rl`` (subpackage or module) -> the units it imports, lazy imports included."""

    def unit(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else "__init__"

    graph: dict[str, set[str]] = {}
    for path in python_files(PACKAGE):
        relative = path.relative_to(PROJECT_ROOT).with_suffix("")
        source_unit = relative.parts[1] if len(relative.parts) > 1 else "__init__"
        targets = graph.setdefault(source_unit, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("syre_rl"):
                names = [f"syre_rl.{a.name}" for a in node.names] if node.module == "syre_rl" else [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("syre_rl.")]
            targets |= {unit(n) for n in names} - {source_unit}
    return graph


def test_packages_import_each_other_in_one_direction():
    graph = package_imports()
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"an import loop between packages: {err.args[1]}")
    assert order.index("core") < order.index("methods") < order.index("policies") < order.index("rl")
    assert order.index("stats") < order.index("supervised") < order.index("sweep")
    assert graph["core"] <= {"__init__"} or not graph["core"], graph["core"]  # core imports only torch


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_is_a_module_of_the_one_lifecycle(name):
    module = importlib.import_module(COMMANDS[name].module)
    for attribute in ("PROG", "parse_args", "check", "run", "main"):
        assert hasattr(module, attribute), f"{COMMANDS[name].module} has no {attribute}"


def test_sweep_grids_name_training_commands_that_write_run_directories():
    for command in TRAINING.values():
        assert command.kind is not None and command.task_flag is not None
        assert command.report in COMMANDS  # every run kind names the command that reports it


def test_the_readme_lists_the_tree_as_it_is():
    readme = (PROJECT_ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    layout = layout[: layout.index("\n## ", 1)] if "\n## " in layout[1:] else layout
    folders = [p.name for p in PROJECT_ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")]
    ignored = {"build", "runs", "sweeps", "gpu-check", "__pycache__"} | {p for p in folders if p.endswith(".egg-info")}
    for folder in sorted(set(folders) - ignored):
        assert f"{folder}/" in layout, f"README layout does not list {folder}/"
    for unit in sorted(p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()):
        if unit.startswith("_") or unit in {"preset_files"}:
            continue
        assert unit in layout, f"README layout does not list syre_rl/{unit}"
    assert "scripts/bench/" in layout
