"""The one preset loader: YAML files of named presets, validated against a dataclass schema.

Presets are data. A script reads ``agents/<algo>.yaml``, ``envs/<task>.yaml`` or ``experiments/<name>.yaml``
through :func:`load_preset` and passes plain values down; no other module reads YAML.

A preset file maps preset names to mappings of fields::

    default:
      n_steps: 2048
      learning_rate: 3.0e-4
    rl-zoo-ant:
      inherit: default        # optional: start from another preset of the same file
      learning_rate: 3.0e-5
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from syre_rl.cli import MAX_INT, UsageError

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGED_PRESETS = Path(__file__).resolve().parent / "preset_files"  # filled by setup.py's build_py
PRESET_KINDS = ("agents", "envs", "experiments", "grids")


def preset_dir(kind: str) -> Path:
    """The folder of one kind of preset files (``agents``, ``envs``, ``experiments``, ``grids``).

    An installed package reads the copies it ships (``syre_rl/preset_files/<kind>``); a source checkout reads
    the repository's top-level folders, the place to edit them.
    """
    if kind not in PRESET_KINDS:
        raise ValueError(f"unknown kind of preset {kind!r}; one of: {', '.join(PRESET_KINDS)}")
    packaged = PACKAGED_PRESETS / kind
    return packaged if packaged.is_dir() else PROJECT_ROOT / kind


def runs_root() -> Path:
    """Where runs go by default: ``runs/`` of the source checkout, or of the working directory when installed."""
    return PROJECT_ROOT / "runs" if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd() / "runs"


class PresetError(UsageError):
    """A preset file or field is missing or invalid; the message names the file, preset and field."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping at any depth (plain YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
            if first != line:
                raise PresetError(
                    f"{self.name}: key {key!r} is given twice (lines {first} and {line}); keep one of them"
                )
        return super().construct_mapping(node, deep=deep)


def read_preset_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a preset file into ``{name: fields}``, with clear errors for missing or malformed files and for a
    key given twice in one mapping (naming file, key and lines)."""
    path = Path(path)
    if not path.is_file():
        raise PresetError(f"preset file not found: {path}")
    try:
        loader = _UniqueKeyLoader(path.read_text())
        loader.name = str(path)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise PresetError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise PresetError(f"{path}: expected a mapping of preset names to mappings of fields")
    return data


def preset_names(path: str | Path) -> list[str]:
    """The preset names a file defines, in file order."""
    return list(read_preset_file(path))


def _resolve(
    path: Path, presets: dict[str, dict[str, Any]], name: str, seen: tuple[str, ...]
) -> dict[str, Any]:
    if name not in presets:
        raise PresetError(f"unknown preset {name!r} in {path}; choose one of: {', '.join(presets)}")
    if name in seen:
        raise PresetError(f"{path}: preset {name!r} inherits from itself ({' -> '.join(seen + (name,))})")
    fields = dict(presets[name])
    parent = fields.pop("inherit", None)
    if parent is None:
        return fields
    return {**_resolve(path, presets, str(parent), seen + (name,)), **fields}


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a simple type hint; ints are accepted for floats (YAML writes 1e-3 as a string)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _check_type(value, arg, where)
            except PresetError:
                continue
        raise PresetError(
            f"{where}: {value!r} is not {' or '.join(getattr(a, '__name__', str(a)) for a in args)}"
        )
    if hint is type(None):
        if value is None:
            return None
        raise PresetError(f"{where}: expected null, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise PresetError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise PresetError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        checked = [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(checked) if origin is tuple else checked
    if origin is dict:
        if not isinstance(value, dict):
            raise PresetError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise PresetError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PresetError(f"{where}: expected a number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):  # NaN passes every range check (nan < 0 is False), so refuse it here
            raise PresetError(f"{where}: expected a finite number, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PresetError(f"{where}: expected an integer, got {value!r}")
        if abs(value) > MAX_INT:
            raise PresetError(f"{where}: {value} is out of range (at most 2**62)")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise PresetError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise PresetError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def build_preset(schema: type[T], fields: dict[str, Any], where: str) -> T:
    """Build ``schema`` (a dataclass) from ``fields``: unknown fields and wrong types raise :class:`PresetError`.

    Fields the dataclass declares with defaults may be left out. After the types are checked, the dataclass's
    own ``__post_init__`` may check values (ranges) and should raise ``ValueError``; it is reported as a
    :class:`PresetError` naming ``where``.
    """
    hints = typing.get_type_hints(schema)
    known = {f.name for f in dataclasses.fields(schema)}  # type: ignore[arg-type]
    unknown = sorted(set(fields) - known)
    if unknown:
        raise PresetError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
        )
    checked = {k: _check_type(v, hints[k], f"{where}: field {k!r}") for k, v in fields.items()}
    try:
        return schema(**checked)
    except TypeError as err:  # a required field is missing
        raise PresetError(f"{where}: {err}") from None
    except ValueError as err:
        raise PresetError(f"{where}: {err}") from None


def load_preset(path: str | Path, name: str, schema: type[T]) -> T:
    """Load preset ``name`` from ``path`` (following ``inherit``) and validate it as ``schema``."""
    path = Path(path)
    presets = read_preset_file(path)
    return build_preset(schema, _resolve(path, presets, name, ()), f"{path.name}:{name}")
