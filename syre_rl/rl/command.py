"""The main job's command line (``scripts/train_ppo.py``, ``python -m syre_rl train``): train PPO (or A2C / SAC)
with Stable-Baselines3 on a PyBullet task, with or without syre.

    python scripts/train_ppo.py --syre                          # the main job: ~10 minutes on a 2-core CPU
    python scripts/train_ppo.py --preset syre-paper --syre --env slippery_ant:study
    python scripts/train_ppo.py --syre --run-dir runs/a --resume   # continue after Ctrl-C or a crash
    tensorboard --logdir runs

Settings come from a preset of ``agents/<algo>.yaml``; flags override single fields. The run itself is
:func:`syre_rl.rl.train.train`; its directory's layout is described in ``syre_rl/runs.py``. Ctrl-C stops after
the current update, saves a checkpoint and exits with status 130; ``--resume`` continues it. Bad input gets one
line on stderr and exit status 2, before anything is written; a diverging run stops with exit status 3.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from syre_rl.cli import EXIT_INTERRUPTED, OneLineParser, non_empty, path_arg, seed_int
from syre_rl.core import SyreConfig
from syre_rl.flags import add_dataclass_flags, collect_dataclass_flags
from syre_rl.lifecycle import run_command
from syre_rl.rl.config import AgentPreset, preset_overrides

PROG = "train_ppo.py"
ALGOS = ("a2c", "ppo", "sac")
PRESET_FLAGS = ("env", "n_envs", "total_timesteps", "layer_norm")  # preset fields with a flag here


def add_method_flags(parser: OneLineParser) -> None:
    """One flag per method of the registry (``--syre``, ``--cbp``, ...) and one ``--syre-<field>`` flag per field
    of :class:`~syre_rl.core.SyreConfig`; the old short forms of the syre flags are refused, naming the new one."""
    from syre_rl.policies.choices import POLICY_CHOICES  # noqa: PLC0415  (imports Stable-Baselines3)

    method = parser.add_mutually_exclusive_group()
    for name, build in POLICY_CHOICES.items():
        if name != "none":
            flag = f"--{name.replace('_', '-')}"
            method.add_argument(flag, dest="method", action="store_const", const=name, help=build.__doc__)
    syre = parser.add_argument_group("syre settings (over the preset's syre group; need --syre)")
    for flag in add_dataclass_flags(syre, SyreConfig, prefix="syre-"):
        parser.renamed[flag.replace("--syre-", "--")] = flag


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", choices=ALGOS, help="agents/<algo>.yaml (default ppo)")
    parser.add_argument("--preset", type=non_empty, help="preset of agents/<algo>.yaml (default: default)")
    preset = parser.add_argument_group("preset fields (over the preset's)")
    add_dataclass_flags(preset, AgentPreset, prefix="", only=PRESET_FLAGS, default="the preset's")
    add_method_flags(parser)
    parser.add_argument("--seed", type=seed_int, help="default 0")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda or auto (default cpu)")
    parser.add_argument("--run-dir", type=path_arg, help="default: runs/<algo>-<env>-<preset>-<method>-s<seed>")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint"
    )
    start.add_argument(
        "--force", action="store_true", help="replace the run in --run-dir (only a run this script wrote)"
    )
    return parser.parse_args(argv)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The preset fields the flags set."""
    return {
        **preset_overrides(args, PRESET_FLAGS),
        "method": args.method,
        "syre": collect_dataclass_flags(args, SyreConfig),
    }


def check(args: argparse.Namespace) -> None:
    """Every test of the command line that can fail before training (the sweep checks its runs with this)."""
    from syre_rl.rl.train import agent_settings  # noqa: PLC0415

    if not args.resume:
        agent_settings(args.algo or "ppo", args.preset or "default", overrides(args))


def run(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415

    from syre_rl.rl.train import train  # noqa: PLC0415

    torch.set_num_threads(1)  # small MLPs gain nothing from intra-op threads; the env steps serially anyway
    result = train(
        args.run_dir,
        algo=args.algo,
        preset=args.preset,
        overrides=overrides(args),
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        force=args.force,
    )
    return EXIT_INTERRUPTED if result.interrupted else 0


def main(argv: list[str] | None = None) -> int:
    return run_command(sys.modules[__name__], argv)  # type: ignore[arg-type]
