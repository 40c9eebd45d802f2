"""Tables (Markdown) and figures (PNG) of a supervised run, from its ``results.json``.

    python scripts/report.py runs/pmnist docs/results/supervised/permuted-mnist
    python scripts/report.py --across beta docs/results/supervised/beta-vae runs/vae-b1 runs/vae-b4 runs/vae-b10

Writes <out>/tables.md (and figure.png for experiments that have one; summary.csv/json over seeds) and copies
results.json beside them. ``--across FIELD OUT_DIR RUN_DIR...``: runs that differ in one preset field, each
setting's seed summary per value (across.md/csv/json/png). Bad input (no readable results.json, an unwritable
output folder) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from syre_rl import runs
from syre_rl.cli import OneLineParser, UsageError, check_writable, fail

PROG = "report.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="a train_supervised.py run directory (OUT_DIR with --across)")
    p.add_argument("out_dir", type=Path, help="where the tables and figures go (a RUN_DIR with --across)")
    p.add_argument("more_runs", type=Path, nargs="*", help="--across: further run directories")
    p.add_argument(
        "--across", metavar="FIELD", help="compare runs that differ in this preset field, e.g. beta"
    )
    args = p.parse_args(argv)
    if args.across:
        args.out_dir, args.runs = args.run_dir, [args.out_dir, *args.more_runs]
    elif args.more_runs:
        p.error("more than two paths need --across FIELD")
    else:
        args.runs = [args.run_dir]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        for run_dir in args.runs:
            results = run_dir / runs.RESULTS
            try:
                config = json.loads(results.read_text())["config"]
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise UsageError(f"cannot read {results}: {err}") from None
            if args.across and args.across not in config:
                raise UsageError(f"{results} has no preset field {args.across!r}")
        check_writable(args.out_dir, "output directory")
    except UsageError as err:
        fail(PROG, str(err))
    from syre_rl.supervised.report import write_across, write_report  # noqa: PLC0415  (matplotlib)

    if args.across:
        print(write_across(args.across, args.runs, args.out_dir))
    else:
        print(write_report(args.run_dir, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
