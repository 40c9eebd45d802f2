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
import re
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal

from syre_rl.cli import finite_float, positive_int

__all__ = ["add_dataclass_flags", "collect_dataclass_flags", "flag_fields", "param_docs"]


def flag_fields(
    cls: type, skip: Iterable[str] = (), only: Iterable[str] | None = None
) -> list[dataclasses.Field[Any]]:
    """The fields of dataclass ``cls`` that get a flag: those in ``only`` (default all), not those in ``skip``,
    nor those with ``metadata["flag"] = False``."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    skip, chosen = set(skip), None if only is None else set(only)
    return [
        f
        for f in dataclasses.fields(cls)
        if f.name not in skip and (chosen is None or f.name in chosen) and f.metadata.get("flag", True)
    ]


def param_docs(cls: type) -> dict[str, str]:
    """``{field: text}`` from the ``:param field: text`` lines of the docstrings of ``cls`` and its bases (a
    field's help where it has no ``metadata["help"]``: the docstring stays the one place that says it)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, text in re.findall(r":param (\w+):((?:.|\n(?!\s*:param|\s*$))*)", klass.__doc__ or ""):
            text = re.sub(r":\w+:`~?([^`]+)`", r"\1", " ".join(text.split()))  # :func:`x` -> x
            docs[name] = text.replace("``", "")
    return docs


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
    only: Iterable[str] | None = None,
    default: str | None = None,
) -> list[str]:
    """Add one ``--<prefix><field>`` flag per field of dataclass ``cls`` (underscores written as dashes).

    :param parser_or_group: an ``ArgumentParser`` or an argument group of one.
    :param prefix: the flags' prefix (``"syre-"``: ``--syre-gamma``); ``""`` for none.
    :param dest_prefix: prefix of the attribute names on the parsed namespace (``dest_prefix + field name``).
    :param short: also offer each flag without the prefix (``--gamma`` beside ``--syre-gamma``).
    :param skip: field names to leave without a flag.
    :param only: the field names that get a flag (default: every field).
    :param default: what the help says the default is (default: the dataclass's value; ``"the preset's"`` for a
        flag over a preset field).
    :returns: the flags added (their long spelling).

    Help is ``metadata["help"]`` (else the field's ``:param`` line in the class docstring) plus ``(default: X)``;
    every flag's own default is ``None``, so :func:`collect_dataclass_flags` returns only the flags given.
    """
    hints = typing.get_type_hints(cls)
    docs = param_docs(cls)
    added = []
    for field in flag_fields(cls, skip, only):
        name = field.name.replace("_", "-")
        spellings = [f"--{prefix}{name}"]
        if short and prefix:
            spellings.append(f"--{name}")
        meaning = field.metadata.get("help") or docs.get(field.name, field.name)
        text = f"{meaning} (default: {default or _default_text(field)})"
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
    args: argparse.Namespace,
    cls: type,
    dest_prefix: str = "",
    *,
    skip: Iterable[str] = (),
    only: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The fields of ``cls`` whose flags were given on the command line: ``{field name: value}`` (``{}`` when
    none was). Lists (``nargs="+"``) come back as tuples; a value is not validated here (building the dataclass
    does that, e.g. ``dataclasses.replace(preset_config, **collected)``)."""
    out: dict[str, Any] = {}
    for field in flag_fields(cls, skip, only):
        value = getattr(args, dest_prefix + field.name, None)
        if value is not None:
            out[field.name] = tuple(value) if isinstance(value, list) else value
    return out
