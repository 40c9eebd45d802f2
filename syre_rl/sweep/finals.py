"""Where each arm of an RL sweep ends: the last logged value of a metric per run, summarised over seeds.

A learning curve answers "how did it get there"; a comparison of defaults asks "where did it end, and by how
much does it differ from the baseline". Per arm (the sweep's method label) and metric: mean over seeds with a
95% percentile bootstrap interval, and the difference from the baseline arm paired by seed (the same seed
draws the same environments and initial weights in both arms), with its own interval.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from syre_rl import runs as layout
from syre_rl.cli import UsageError
from syre_rl.stats import bootstrap_band
from syre_rl.sweep.curves import read_scalars
from syre_rl.sweep.figures import Metric, Warn, _stderr, first_matching, read_sweep

__all__ = ["FINAL_METRICS", "final_values", "finals_table", "write_finals"]

FINAL_METRICS: list[Metric] = [
    ("evaluation return", ["eval/mean_reward"]),
    ("training return", ["rollout/ep_rew_mean"]),
]

FinalValues = dict[str, dict[str, dict[int, float]]]  # metric -> method -> seed -> last value


def final_values(sweep_dir: Path, metrics: list[Metric], warn: Warn = _stderr) -> FinalValues:
    """The last logged value of each metric in each finished run of the sweep (unfinished runs are left out)."""
    manifest = read_sweep(sweep_dir)
    out: FinalValues = {name: {} for name, _ in metrics}
    for run in manifest["runs"]:
        run_dir = Path(sweep_dir) / run["id"]
        if not layout.finished("rl", run_dir):
            warn(f"{run['id']} has not finished; left out")
            continue
        scalars = read_scalars(run_dir / layout.TB)
        for name, patterns in metrics:
            tags = first_matching(patterns, set(scalars))
            if tags:
                out[name].setdefault(run["method"], {})[int(run["seed"])] = float(scalars[tags[0]][1][-1])
    return {name: by_method for name, by_method in out.items() if by_method}


def _summary(values: list[float]) -> tuple[float, float, float]:
    mean, lo, hi, _ = bootstrap_band(np.array(values, dtype=np.float64)[:, None])
    return float(mean[0]), float(lo[0]), float(hi[0])


def finals_table(values: FinalValues, baseline: str | None) -> list[dict]:
    """One row per metric and arm: seeds, mean [lo, hi], and (``baseline`` given) the paired difference."""
    rows = []
    for metric, by_method in values.items():
        base = by_method.get(baseline, {}) if baseline else {}
        for method, by_seed in by_method.items():
            seeds = sorted(by_seed)
            mean, lo, hi = _summary([by_seed[s] for s in seeds])
            row = {"metric": metric, "method": method, "seeds": len(seeds), "mean": mean, "lo": lo, "hi": hi}
            paired = [s for s in seeds if s in base]
            if base and method != baseline and paired:
                diff, dlo, dhi = _summary([by_seed[s] - base[s] for s in paired])
                row.update(paired_seeds=len(paired), diff=diff, diff_lo=dlo, diff_hi=dhi)
            rows.append(row)
    return rows


def _markdown(rows: list[dict], baseline: str | None) -> str:
    head = "| metric | arm | seeds | mean [95% interval] |"
    head += f" minus {baseline}, paired by seed |" if baseline else ""
    lines = [head, "|---" * (5 if baseline else 4) + "|"]
    for r in rows:
        line = f"| {r['metric']} | {r['method']} | {r['seeds']} | {r['mean']:.1f} [{r['lo']:.1f}, {r['hi']:.1f}] |"
        if baseline:
            diff = f" {r['diff']:+.1f} [{r['diff_lo']:+.1f}, {r['diff_hi']:+.1f}] ({r['paired_seeds']})" if "diff" in r else ""
            line += f"{diff} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_finals(
    sweep_dir: Path, out: Path, *, baseline: str | None, metrics: list[Metric] | None = None, warn: Warn = _stderr
) -> list[Path]:
    """Write ``out/finals.csv`` (one row per metric and arm, and per run in ``finals_runs.csv``) and
    ``out/finals.md``; returns their paths.

    :raises UsageError: no finished run logged any of the metrics, or ``baseline`` is not an arm of the sweep
    """
    values = final_values(sweep_dir, metrics or FINAL_METRICS, warn)
    if not values:
        raise UsageError(f"no finished run of {sweep_dir} has logged any of the metrics")
    arms = {m for by_method in values.values() for m in by_method}
    if baseline is not None and baseline not in arms:
        raise UsageError(f"baseline {baseline!r} is not a finished arm of the sweep ({', '.join(sorted(arms))})")
    rows = finals_table(values, baseline)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "finals.csv", out / "finals_runs.csv", out / "finals.md"]
    fields = ["metric", "method", "seeds", "mean", "lo", "hi", "paired_seeds", "diff", "diff_lo", "diff_hi"]
    per_run = [
        {"metric": metric, "method": method, "seed": seed, "value": value}
        for metric, by_method in values.items()
        for method, by_seed in by_method.items()
        for seed, value in sorted(by_seed.items())
    ]
    for path, names, table in ((paths[0], fields, rows), (paths[1], ["metric", "method", "seed", "value"], per_run)):
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=names)
        writer.writeheader()
        writer.writerows(table)
        layout.atomic_write_text(path, text.getvalue())
    layout.atomic_write_text(paths[2], _markdown(rows, baseline))
    return paths
