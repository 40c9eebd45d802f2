"""Speed-up of stacked seeds over one seed at a time on a slice of each plasticity benchmark, side by side.

For each benchmark, the same slice (its default preset cut to one short task) is trained through the real
pipeline as one run of E stacked seeds and as E runs of one seed each, alternately, ``--repeats`` times; the
time is the pipeline's own ``train_seconds`` (training and measurements, not data loading), best of the repeats.

    python scripts/bench/bench_stacking.py --threads 1 --members 20 --out docs/results/plasticity/stacking_speed.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

from syre_rl.presets import PROJECT_ROOT, load_preset
from syre_rl.supervised.data import DataError
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.train import train

SLICES = {
    "bit-flipping": {"bins": 1, "flip_every": 2000},
    "kumar-permuted-mnist": {"tasks": 1, "steps_per_task": 100},
    "random-label-mnist": {"tasks": 1, "steps_per_task": 100},
}


def run_seconds(name: str, seeds: int, seed: int, run_dir: Path) -> float:
    experiment = EXPERIMENTS[name]
    cfg = load_preset(PROJECT_ROOT / "experiments" / f"{name}.yaml", "default", experiment.schema)
    cfg = dataclasses.replace(cfg, **SLICES[name], seeds=seeds, seed=seed, methods=["none"])
    return train(experiment, cfg, run_dir=run_dir, force=True, log=lambda s: None)["train_seconds"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.members < 1 or args.repeats < 1 or args.threads < 1:
        print("error: --members, --repeats and --threads must be >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SLICES:
            stacked, sequential = [], []
            try:
                for _ in range(args.repeats):
                    stacked.append(run_seconds(name, args.members, 0, Path(tmp) / "s"))
                    sequential.append(
                        sum(run_seconds(name, 1, i, Path(tmp) / f"q{i}") for i in range(args.members))
                    )
            except DataError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            row = {
                "benchmark": name,
                "slice": SLICES[name],
                "members": args.members,
                "stacked_s": min(stacked),
                "sequential_s": min(sequential),
                "speedup": min(sequential) / min(stacked),
            }
            rows.append(row)
            print(
                f"{name}: {args.members} seeds stacked {row['stacked_s']:.2f}s, one at a time "
                f"{row['sequential_s']:.2f}s, speed-up {row['speedup']:.1f}x"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"threads": args.threads, "repeats": args.repeats, "device": "cpu"}
        args.out.write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
