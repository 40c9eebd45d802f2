"""Plot a sweep: mean over seeds and a 95% bootstrap band per method, one figure per task.

    python scripts/plot.py runs/sweeps/rl-slippery-ant-study
    python scripts/plot.py runs/sweeps/rl-smoke --metric return=rollout/ep_rew_mean --metric "kl=train/approx_kl"
    python scripts/plot.py runs/sweeps/supervised-permuted-mnist --out figures/pmnist
    python scripts/plot.py runs/sweeps/rl-main-job --finals ppo --out docs/results/rl/main-job

RL sweeps (train_ppo.py runs) are read from their TensorBoard event files and binned by environment steps;
regime changes are marked where ``env/regime_index`` changes (else every ``change_every`` steps of the task).
Supervised sweeps are read from each run's ``results.json``, one point per stage, grouped by member (method and
sweep values) over seeds. A metric is ``NAME=PATTERN[|PATTERN...]``: the first pattern (fnmatch glob) that
matches any run's tags is used, and several matching tags are averaged (e.g. over layers). Metrics no run has
are skipped. Writes <out>/<task>.png and .svg and <out>/curves.csv (task, step, method, metric, mean, lo, hi,
n_seeds); <out> defaults to <sweep>/figures. ``--finals BASELINE`` (RL sweeps of train_ppo.py) also writes where
each arm ends: finals.csv/.md (last evaluation and training return, mean and bootstrap interval over seeds, and
the difference from arm BASELINE paired by seed) and finals_runs.csv (every finished run's values). Bad input: one line on stderr, exit status 2. The work is
:func:`syre_rl.sweep.figures.plot_sweep` and :func:`syre_rl.sweep.finals.write_finals`.
"""

from __future__ import annotations

import argparse
import sys

from syre_rl.cli import OneLineParser, UsageError, check_writable, path_arg, positive_int
from syre_rl.lifecycle import run_command

PROG = "plot.py"


def metric_spec(text: str) -> tuple[str, list[str]]:
    from syre_rl.sweep.figures import parse_metric  # noqa: PLC0415

    try:
        return parse_metric(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "sweep_dir", type=path_arg, help="a sweep directory (with sweep.json), e.g. runs/sweeps/rl-smoke"
    )
    p.add_argument("--out", type=path_arg, help="output folder (default: <sweep_dir>/figures)")
    p.add_argument(
        "--metric", type=metric_spec, action="append", help="NAME=PATTERN[|PATTERN...] (repeatable)"
    )
    p.add_argument(
        "--finals",
        metavar="BASELINE",
        help="RL sweeps: also write finals.csv/.md, each arm's last evaluation and training return over seeds "
        "and its difference from arm BASELINE paired by seed (e.g. --finals ppo)",
    )
    p.add_argument("--bins", type=positive_int, default=50, help="step bins of RL curves (default 50)")
    p.add_argument("--confidence", type=float, default=0.95, help="bootstrap interval (default 0.95)")
    p.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--verbose", action="store_true", help="print warnings (runs left out) as they come, also before an error")
    args = p.parse_args(argv)
    if not 0 < args.confidence < 1:  # also refuses nan
        p.error(f"--confidence must be in (0, 1), got {args.confidence}")
    if args.bins > 100_000 or args.resamples > 1_000_000:
        p.error("--bins must be <= 100000 and --resamples <= 1000000")
    args.out = args.out or args.sweep_dir / "figures"
    return args


def check(args: argparse.Namespace) -> None:
    from syre_rl.sweep.figures import read_sweep  # noqa: PLC0415  (numpy, TensorBoard)

    manifest = read_sweep(args.sweep_dir)
    if args.finals is not None and manifest.get("script") == "train_supervised":
        raise UsageError("--finals reads RL runs; supervised sweeps report with plasticity_report.py")
    check_writable(args.out, "output directory")


def run(args: argparse.Namespace) -> int:
    from syre_rl.sweep.figures import plot_sweep  # noqa: PLC0415
    from syre_rl.sweep.finals import write_finals  # noqa: PLC0415

    warnings: list[str] = []  # printed after a success: a failure is one line (unless --verbose)

    def warn(message: str) -> None:
        if args.verbose:
            print(f"{PROG}: {message}", file=sys.stderr)
        else:
            warnings.append(f"{PROG}: {message}")

    plot_sweep(args.sweep_dir, args.out, metrics=args.metric, bins=args.bins, confidence=args.confidence,
               resamples=args.resamples, warn=warn)  # fmt: skip
    if args.finals is not None:
        for path in write_finals(args.sweep_dir, args.out, baseline=args.finals, warn=warn):
            print(f"wrote {path}")
    for line in warnings:
        print(line, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(sys.modules[__name__], argv)  # type: ignore[arg-type]
