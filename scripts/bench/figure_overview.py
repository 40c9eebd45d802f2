"""The README's figure, from committed result files only: a plain network losing plasticity, the arm that keeps it.

    python scripts/bench/figure_overview.py --out docs/results/overview.png

Left: random-label MNIST (accuracy on each new labelling, 10 seeds). Right: the fast RL benchmark (the continuing
agent's return minus a fresh agent's on each new regime, 5 seeds). Mean and 95% band over seeds.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from syre_rl.cli import OneLineParser
from syre_rl.presets import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "docs" / "results"
# (csv file, x column, y, lo, hi columns, row filter column, {arm: label}, title, y label)
PANELS = [
    (
        RESULTS / "plasticity/random-label-mnist/compare/curves.csv",
        ("stage", "mean", "lo", "hi"),
        ("metric", "train/task_accuracy"),
        {"none": "plain", "syre_wd0.001_s0.01": "syre (decay 1e-3)", "redo": "ReDo (resets dormant units)"},
        "random-label MNIST: a new labelling per task",
        "training accuracy on the task",
    ),
    (
        RESULTS / "rl/vec-pendulum-controls/regimes.csv",
        ("regime", "figure", "figure_lo", "figure_hi"),
        None,
        {
            "ppo": "plain PPO",
            "ppo-syre": "PPO + syre",
            "ppo-reset-head": "PPO + reset head at each change",
            "ppo-reset-all": "a fresh network at each change (control)",
        },
        "RL: pendulums whose observation rotates every regime",
        "return minus a fresh agent's",
    ),
]


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="figure_overview.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=RESULTS / "overview.png")
    args = p.parse_args(argv)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(12, 3.8))
    for ax, (path, (x, y, lo, hi), where, arms, title, ylabel) in zip(axes, PANELS, strict=True):
        rows = list(csv.DictReader(path.open()))
        for i, (arm, label) in enumerate(arms.items()):
            mine = [r for r in rows if r["arm"] == arm and (where is None or r[where[0]] == where[1])]
            xs = [float(r[x]) for r in mine]
            ax.plot(xs, [float(r[y]) for r in mine], color=f"C{i}", marker="o", ms=3, label=label)
            ax.fill_between(xs, [float(r[lo]) for r in mine], [float(r[hi]) for r in mine], color=f"C{i}", alpha=0.2)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(x.replace("stage", "task"))
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    partial = args.out.with_name(f".{args.out.name}.partial")
    fig.savefig(partial, dpi=100, format="png")
    partial.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
