"""Command-line flags read off a settings dataclass (syre_rl.flags)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pytest

from syre_rl.cli import OneLineParser
from syre_rl.core import ANCHOR_SCALES, MODES, SyreConfig
from syre_rl.flags import add_dataclass_flags, collect_dataclass_flags, param_docs


def syre_parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p")
    add_dataclass_flags(parser.add_argument_group("syre settings"), SyreConfig, **kwargs)
    return parser


def test_one_flag_per_field_with_the_dataclass_default_in_its_help():
    parser = syre_parser()
    text = parser.format_help()
    for f in dataclasses.fields(SyreConfig):
        flag = "--syre-" + f.name.replace("_", "-")
        if f.metadata.get("flag", True):
            assert flag in text
        else:
            assert flag not in text  # the anchor seed: no flag
    actions = {a.dest: a for a in parser._actions}
    config = SyreConfig()
    for name in ("gamma", "sigma0", "anchor_scale", "mode", "spread"):
        assert f"(default: {getattr(config, name)})" in actions[name].help
    assert "(default: init)" in actions["anchor_scale"].help and "initial std" in actions["anchor_scale"].help
    assert actions["anchor_scale"].choices == list(ANCHOR_SCALES)
    assert actions["mode"].choices == list(MODES)


def test_given_flags_are_collected_and_typed():
    args = syre_parser().parse_args(
        [
            "--syre-gamma",
            "0.5",
            "--syre-mode",
            "coupled",
            "--syre-exclude",
            "value_net.*",
            "a.*",
            "--syre-init-offset",
        ]
    )
    assert collect_dataclass_flags(args, SyreConfig) == {
        "gamma": 0.5,
        "mode": "coupled",
        "exclude": ("value_net.*", "a.*"),
        "init_offset": True,
    }
    config = dataclasses.replace(SyreConfig(), **collect_dataclass_flags(args, SyreConfig))
    assert config.gamma == 0.5 and config.exclude == ("value_net.*", "a.*") and config.sigma0 == 1.0


def test_unset_flags_collect_nothing():
    assert collect_dataclass_flags(syre_parser().parse_args([]), SyreConfig) == {}


def test_bad_choice_and_bad_number_are_refused(capsys):
    parser = OneLineParser(prog="p")
    add_dataclass_flags(parser, SyreConfig)
    for argv in (["--syre-anchor-scale", "sideways"], ["--syre-gamma", "nan"]):
        with pytest.raises(SystemExit) as err:
            parser.parse_args(argv)
        assert err.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_prefix_dest_prefix_short_and_skip():
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, SyreConfig, prefix="syre-", dest_prefix="syre_", short=True, skip=("spread",))
    args = parser.parse_args(["--gamma", "0.2", "--syre-sigma0", "3"])
    assert args.syre_gamma == 0.2 and args.syre_sigma0 == 3.0 and not hasattr(args, "syre_spread")
    assert collect_dataclass_flags(args, SyreConfig, "syre_", skip=("spread",)) == {
        "gamma": 0.2,
        "sigma0": 3.0,
    }


def test_any_dataclass():
    @dataclass(frozen=True)
    class Settings:
        rate: float = field(default=0.1, metadata={"help": "how fast (100% is all)"})
        every: int = field(default=10, metadata={"help": "steps between"})
        kind: Literal["a", "b"] = field(default="a", metadata={"help": "which"})

    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, Settings, prefix="")
    assert "100%" in parser.format_help()  # a % in the help is printed, not formatted
    args = parser.parse_args(["--every", "1e3", "--kind", "b"])
    assert collect_dataclass_flags(args, Settings) == {"every": 1000, "kind": "b"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--every", "0"])  # positive integers only


def test_preset_field_flags_take_their_help_from_the_schemas_docstring():
    """Flags over preset fields (``--env``, ``--n-envs``, ...) read their meaning off the schema's ``:param``
    lines and say that the preset gives the default; only the fields named get a flag."""
    from syre_rl.rl import command
    from syre_rl.rl.config import AgentPreset

    docs = param_docs(AgentPreset)
    assert docs["n_envs"] == "environments stepped in lockstep (DummyVecEnv)"
    assert "``" not in docs["env"] and ":func:" not in docs["env"]  # markup stripped for a terminal
    parser = argparse.ArgumentParser()
    added = add_dataclass_flags(parser, AgentPreset, prefix="", only=("n_envs", "layer_norm"), default="the preset's")
    assert added == ["--n-envs", "--layer-norm"]
    text = " ".join(parser.format_help().split())
    assert "environments stepped in lockstep (DummyVecEnv) (default: the preset's)" in text
    args = parser.parse_args(["--layer-norm"])
    assert collect_dataclass_flags(args, AgentPreset, only=("n_envs", "layer_norm")) == {"layer_norm": True}
    assert command.overrides(command.parse_args(["--n-envs", "4", "--syre", "--syre-gamma", "0.5"])) == {
        "n_envs": 4, "method": "syre", "syre": {"gamma": 0.5},
    }  # fmt: skip
