"""Command-line flags from a dataclass: one ``--<prefix><field>`` flag per field, its help and default the field's.

A settings dataclass (such as :class:`syre_rl.core.SyreConfig`) states each setting once: its type, its default
and, in ``metadata["help"]``, what it means. The flags are read off it, so a script never types the choices,
help texts or defaults out again:

    group = parser.add_argument_group("syre settings")
    add_dataclass_flags(group, SyreConfig, prefix="syre-")
    ...
    settings = collect_dataclass_flags(args, SyreConfig)  # only the flags given: {"gamma": 0.5}

Every flag defaults to ``None``, so a flag left out never overrides a preset. Types: ``float`` (finite, see
:func:`syre_rl.cli.finite_float`), ``int`` (:func:`syre_rl.cli.positive_int`), ``str``, a ``Literal`` (its
values are the choices), ``bool`` (``store_true``), and tuples or lists of those (one or more values). A field's
``metadata["type"]`` overrides the argparse type; ``metadata["flag"] = False`` leaves the field without a flag.

This module imports only the standard library (and :mod:`syre_rl.cli`, which does too).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal

from syre_rl.cli import finite_float, positive_int

__all__ = ["add_dataclass_flags", "collect_dataclass_flags", "flag_fields"]


def flag_fields(cls: type, skip: Iterable[str] = ()) -> list[dataclasses.Field[Any]]:
    """The fields of dataclass ``cls`` that get a flag (not those in ``skip``, nor ``metadata["flag"] = False``)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    skip = set(skip)
    return [f for f in dataclasses.fields(cls) if f.name not in skip and f.metadata.get("flag", True)]


def _strip_optional(tp: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _argparse_options(field: dataclasses.Field[Any], tp: Any) -> dict[str, Any]:
    """``type`` / ``choices`` / ``nargs`` / ``action`` for a field of (resolved) type ``tp``."""
    tp = _strip_optional(tp)
    options: dict[str, Any] = {}
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        options["nargs"] = "+"
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        tp = _strip_optional(args[0]) if args else str
        origin = typing.get_origin(tp)
    if "type" in field.metadata:
        options["type"] = field.metadata["type"]
    elif origin is Literal:
        choices = typing.get_args(tp)
        options["choices"] = list(choices)
        options["type"] = type(choices[0])
    elif tp is bool:
        if "nargs" in options:
            raise TypeError(f"field {field.name!r}: a list of booleans has no flag")
        return {"action": "store_true"}
    elif tp is float:
        options["type"] = finite_float
    elif tp is int:
        options["type"] = positive_int
    elif tp is str:
        options["type"] = str
    else:
        raise TypeError(f"field {field.name!r}: no flag type for {tp!r} (set metadata['type'])")
    return options


def _default_text(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    return str(value)


def add_dataclass_flags(
    parser_or_group: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    prefix: str = "syre-",
    dest_prefix: str = "",
    *,
    short: bool = False,
    skip: Iterable[str] = (),
) -> list[str]:
    """Add one ``--<prefix><field>`` flag per field of dataclass ``cls`` (underscores written as dashes).

    :param parser_or_group: an ``ArgumentParser`` or an argument group of one.
    :param prefix: the flags' prefix (``"syre-"``: ``--syre-gamma``); ``""`` for none.
    :param dest_prefix: prefix of the attribute names on the parsed namespace (``dest_prefix + field name``).
    :param short: also offer each flag without the prefix (``--gamma`` beside ``--syre-gamma``).
    :param skip: field names to leave without a flag.
    :returns: the flags added (their long spelling).

    Help is ``metadata["help"]`` plus ``(default: X)`` with the dataclass's default; every flag's own default is
    ``None``, so :func:`collect_dataclass_flags` returns only the flags given.
    """
    hints = typing.get_type_hints(cls)
    added = []
    for field in flag_fields(cls, skip):
        name = field.name.replace("_", "-")
        spellings = [f"--{prefix}{name}"]
        if short and prefix:
            spellings.append(f"--{name}")
        text = f"{field.metadata.get('help', field.name)} (default: {_default_text(field)})"
        options = _argparse_options(field, hints[field.name])
        if options.get("type") is str:
            del options["type"]
        metavar = {} if "choices" in options or options.get("action") else {"metavar": field.name.upper()}
        parser_or_group.add_argument(
            *spellings,
            dest=dest_prefix + field.name,
            default=None,
            help=text.replace("%", "%%"),  # argparse formats help strings
            **metavar,
            **options,
        )
        added.append(spellings[0])
    return added


def collect_dataclass_flags(
    args: argparse.Namespace, cls: type, dest_prefix: str = "", *, skip: Iterable[str] = ()
) -> dict[str, Any]:
    """The fields of ``cls`` whose flags were given on the command line: ``{field name: value}`` (``{}`` when
    none was). Lists (``nargs="+"``) come back as tuples; a value is not validated here (building the dataclass
    does that, e.g. ``dataclasses.replace(preset_config, **collected)``)."""
    out: dict[str, Any] = {}
    for field in flag_fields(cls, skip):
        value = getattr(args, dest_prefix + field.name, None)
        if value is not None:
            out[field.name] = tuple(value) if isinstance(value, list) else value
    return out
