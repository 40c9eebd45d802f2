"""Tables (Markdown) and figures (PNG) of a supervised run, from its ``results.json``.

    python scripts/report.py runs/pmnist docs/results/supervised/permuted-mnist

Writes <out>/tables.md (and figure.png for experiments that have one) and copies results.json beside them. Bad
input (no readable results.json, an unwritable output folder) is one line on stderr and exit status 2.
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
    p.add_argument("run_dir", type=Path, help="a train_supervised.py run directory")
    p.add_argument("out_dir", type=Path, help="where the tables and figures go")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = args.run_dir / runs.RESULTS
        try:
            json.loads(results.read_text())
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot read {results}: {err}") from None
        check_writable(args.out_dir, "output directory")
    except UsageError as err:
        fail(PROG, str(err))
    from syre_rl.supervised.report import write_report  # noqa: PLC0415  (matplotlib: only when needed)

    print(write_report(args.run_dir, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
