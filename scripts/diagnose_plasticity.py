"""Which part of an agent lost plasticity: counterfactual resets from a run's checkpoint at a regime change.

    python scripts/diagnose_plasticity.py runs/plasticity/RUN --step 100000 --seeds 3 --out diagnosis/RUN

RUN is a finished ``scripts/rl_plasticity.py`` run (it checkpoints at every change). Writes diagnosis.json, .csv,
.md and .png into --out (default: RUN-diagnosis beside the run). The logic: :mod:`syre_rl.rl.diagnose`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from syre_rl.cli import OneLineParser, UsageError, check_writable, fail, positive_int
from syre_rl.rl.diagnose import COUNTERFACTUALS, diagnose, write_diagnosis
from syre_rl.rl.run_dir import CheckpointError

PROG = "diagnose_plasticity.py"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument(
        "--step", type=int, default=None, help="use the first checkpoint at or after this run step"
    )
    p.add_argument("--steps", type=positive_int, help="steps per continuation (default: rest of the regime)")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per counterfactual (default 3)")
    p.add_argument(
        "--only", help=f"comma-separated counterfactuals (default all: {', '.join(COUNTERFACTUALS)})"
    )
    p.add_argument("--out", type=Path, help="output folder (default: RUN-diagnosis)")
    args = p.parse_args(argv)
    out = args.out or args.run_dir.with_name(args.run_dir.name + "-diagnosis")
    torch.set_num_threads(1)  # small networks: more threads only spin against each other
    try:
        check_writable(out, "output directory")
        only = args.only.split(",") if args.only else None
        result = diagnose(args.run_dir, args.step, args.steps, args.seeds, only)
    except (UsageError, CheckpointError, ValueError) as err:
        fail(PROG, str(err))
    write_diagnosis(result, out)
    print(f"restores at least half the gap: {', '.join(result.restoring()) or 'no single part'}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
