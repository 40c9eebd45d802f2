"""Plot a sweep: mean over seeds and a 95% bootstrap band per method, one figure per task.

    python scripts/plot.py runs/sweeps/rl-slippery-ant-study
    python scripts/plot.py runs/sweeps/rl-smoke --metric return=rollout/ep_rew_mean --metric "kl=train/approx_kl"
    python scripts/plot.py runs/sweeps/supervised-permuted-mnist --out figures/pmnist

RL sweeps (train_ppo.py runs) are read from their TensorBoard event files and binned by environment steps;
regime changes are marked where ``env/regime_index`` changes (else every ``change_every`` steps of the task).
Supervised sweeps are read from each run's ``results.json``, one point per stage, grouped by member (method and
sweep values) over seeds. A metric is ``NAME=PATTERN[|PATTERN...]``: the first pattern (fnmatch glob) that
matches any run's tags is used, and several matching tags are averaged (e.g. over layers). Metrics no run has
are skipped. Writes <out>/<task>.png and .svg and <out>/curves.csv (task, step, method, metric, mean, lo, hi,
n_seeds); <out> defaults to <sweep>/figures. Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from syre_rl import runs as layout
from syre_rl.cli import OneLineParser, UsageError, check_writable, fail, positive_int
from syre_rl.presets import PresetError
from syre_rl.sweep.curves import (
    bin_means,
    bootstrap_band,
    nan_mean,
    read_scalars,
    regime_changes,
    select_tags,
)
from syre_rl.sweep.grid import read_manifest

PROG = "plot.py"
RL_METRICS = [
    "return=rollout/ep_rew_mean",
    "effective rank=plasticity/actor/effective_rank",
    "dead units=plasticity/actor/dead_fraction",
    "weight magnitude=plasticity/actor/weight_magnitude/*",
]
SUPERVISED_METRICS = [
    "new-task accuracy=test/accuracy",
    "mean accuracy of seen tasks=tasks/mean_accuracy",
    "first-task accuracy=tasks/accuracy_task0",
    "effective rank=start/effective_rank/layer*|test/effective_rank/layer*|features/*effective_rank",
    "dead units=start/dead_fraction/layer*|test/dead_fraction/layer*",
]
REGIME_TAG = "env/regime_index"


def metric_spec(text: str) -> tuple[str, list[str]]:
    name, sep, patterns = text.partition("=")
    if not sep or not name.strip() or not patterns.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=PATTERN[|PATTERN...], got {text!r}")
    return name.strip(), [p.strip() for p in patterns.split("|") if p.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "sweep_dir", type=Path, help="a sweep directory (with sweep.json), e.g. runs/sweeps/rl-smoke"
    )
    p.add_argument("--out", type=Path, help="output folder (default: <sweep_dir>/figures)")
    p.add_argument(
        "--metric", type=metric_spec, action="append", help="NAME=PATTERN[|PATTERN...] (repeatable)"
    )
    p.add_argument("--bins", type=positive_int, default=50, help="step bins of RL curves (default 50)")
    p.add_argument("--confidence", type=float, default=0.95, help="bootstrap interval (default 0.95)")
    p.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples (default 2000)")
    args = p.parse_args(argv)
    if not 0 < args.confidence < 1:  # also refuses nan
        p.error(f"--confidence must be in (0, 1), got {args.confidence}")
    if args.bins > 100_000 or args.resamples > 1_000_000:
        p.error("--bins must be <= 100000 and --resamples <= 1000000")
    return args


@dataclass
class TaskCurves:
    """The per-seed curves of one task on a common x axis: ``values[metric][method]`` is ``[seeds, len(x)]``."""

    x: np.ndarray
    x_label: str
    marks: list[float] = field(default_factory=list)
    values: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)

    def add(self, metric: str, method: str, curve: np.ndarray) -> None:
        self.values.setdefault(metric, {}).setdefault(method, []).append(curve)


def first_matching(patterns: list[str], tags: set[str]) -> list[str]:
    """The tags of the first pattern that matches any of ``tags``."""
    for pattern in patterns:
        matched = select_tags(pattern, tags)
        if matched:
            return matched
    return []


# ------------------------------------------------------------------------------------------------- RL
def task_change_every(run_dir: Path) -> int | None:
    """``change_every`` of the run's task preset (from its config.json), or None for a stationary env."""
    try:
        env = json.loads((run_dir / layout.CONFIG).read_text())["preset"]["env"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    from syre_rl.envs import resolve_env  # noqa: PLC0415  (gymnasium and pybullet: only for this fallback)

    try:
        task = resolve_env(env).task
    except ValueError:
        return None
    return task.change_every if task is not None else None


def rl_curves(
    sweep_dir: Path, runs: list[dict], metrics: list[tuple[str, list[str]]], bins: int
) -> TaskCurves:
    scalars = {}
    for run in runs:
        tb = sweep_dir / run["id"] / layout.TB
        if tb.is_dir():
            scalars[run["id"]] = read_scalars(tb)
        else:
            print(f"{PROG}: {run['id']} has no event files yet; left out", file=sys.stderr)
    last = max((int(s[-1]) for tags in scalars.values() for s, _ in tags.values() if len(s)), default=0)
    edges = np.linspace(0, last + 1, bins + 1)
    curves = TaskCurves(x=np.round((edges[:-1] + edges[1:]) / 2), x_label="environment steps")
    all_tags = {t for tags in scalars.values() for t in tags}
    for name, patterns in metrics:
        matched = first_matching(patterns, all_tags)
        for run in runs:
            tags = scalars.get(run["id"], {})
            binned = [bin_means(*tags[t], edges) for t in matched if t in tags]
            if binned:
                curves.add(name, run["method"], nan_mean(np.stack(binned)))
    regime_runs = [r for r in runs if REGIME_TAG in scalars.get(r["id"], {})]
    if regime_runs:
        curves.marks = regime_changes(*scalars[regime_runs[0]["id"]][REGIME_TAG])
    elif runs and (every := task_change_every(sweep_dir / runs[0]["id"])):
        curves.marks = list(range(every, last + 1, every))
    return curves


# ------------------------------------------------------------------------------------------ supervised
def supervised_curves(sweep_dir: Path, runs: list[dict], metrics: list[tuple[str, list[str]]]) -> TaskCurves:
    """One point per stage for every member of every run, grouped by the member's name without its seed."""
    results = []
    for run in runs:
        try:
            results.append(json.loads((sweep_dir / run["id"] / layout.RESULTS).read_text()))
        except (OSError, ValueError):
            print(f"{PROG}: {run['id']} has no readable results.json yet; left out", file=sys.stderr)
    stages = max((r["stages"] for r in results), default=0)
    history0 = results[0]["history"] if results else []
    one_epoch = all(h["epoch"] == 0 for h in history0)
    curves = TaskCurves(
        x=np.arange(1, stages + 1, dtype=float), x_label="task" if one_epoch else "stage (epoch)"
    )
    if not one_epoch:
        curves.marks = [
            h["stage"] + 0.5
            for h, prev in zip(history0[1:], history0[:-1], strict=True)
            if h["task"] != prev["task"]
        ]
    all_keys = {k for r in results for h in r["history"] for k in h["metrics"]}
    for name, patterns in metrics:
        matched = first_matching(patterns, all_keys)
        for r in results:
            for i, member in enumerate(r["members"]):
                curve = np.full(stages, np.nan)
                for h in r["history"]:
                    found = [h["metrics"][k][i] for k in matched if k in h["metrics"]]
                    if found:
                        curve[h["stage"]] = np.mean(found)
                if not np.isnan(curve).all():
                    curves.add(name, re.sub(r"_seed\d+$", "", member["name"]), curve)
    return curves


# ------------------------------------------------------------------------------------------- output
def summarise(curves: TaskCurves, confidence: float, resamples: int) -> list[dict]:
    rows = []
    for metric, by_method in curves.values.items():
        for method, seeds in by_method.items():
            mean, lo, hi, n = bootstrap_band(np.stack(seeds), confidence, resamples)
            for b in np.flatnonzero(n > 0):
                rows.append(
                    {"step": int(curves.x[b]) if curves.x[b].is_integer() else curves.x[b], "method": method, "metric": metric, "mean": mean[b], "lo": lo[b],
                     "hi": hi[b], "n_seeds": int(n[b])}
                )  # fmt: skip
    return rows


def draw(task: str, curves: TaskCurves, rows: list[dict], out: Path, confidence: float) -> list[Path]:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    metrics = list(curves.values)
    cols = min(len(metrics), 2)
    nrows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(6 * cols, 3.6 * nrows), squeeze=False)
    methods = sorted({r["method"] for r in rows})
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for method in methods:
            pts = [r for r in rows if r["metric"] == metric and r["method"] == method]
            if not pts:
                continue
            x = [r["step"] for r in pts]
            seeds = max(r["n_seeds"] for r in pts)
            ax.plot(
                x, [r["mean"] for r in pts], color=colors[method], label=f"{method} ({seeds} seeds)",
                marker="o" if len(pts) <= 12 else None, markersize=3,
            )  # fmt: skip
            ax.fill_between(
                x, [r["lo"] for r in pts], [r["hi"] for r in pts], color=colors[method], alpha=0.2
            )
        for mark in curves.marks:
            ax.axvline(mark, color="0.6", linestyle="--", linewidth=0.8)
        ax.set_title(metric)
        ax.set_xlabel(curves.x_label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.remove()
    axes.flat[0].legend(fontsize="small")
    fig.suptitle(f"{task or 'sweep'}: mean and {100 * confidence:g}% bootstrap band over seeds")
    fig.tight_layout()
    stem = out / re.sub(r"[^A-Za-z0-9_.+-]", "-", task or "sweep")
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or args.sweep_dir / "figures"
    try:
        manifest = read_manifest(args.sweep_dir)
        for i, run in enumerate(manifest["runs"]):
            if not (isinstance(run, dict) and isinstance(run.get("id"), str) and run["id"]):
                raise UsageError(f"{args.sweep_dir / 'sweep.json'}: run {i} has no id")
            if not isinstance(run.get("method"), str):
                raise UsageError(f"{args.sweep_dir / 'sweep.json'}: run {run['id']} has no method")
        check_writable(out, "output directory")
    except (PresetError, UsageError) as err:
        fail(PROG, str(err))
    supervised = manifest.get("script") == "train_supervised"
    metrics = args.metric or [metric_spec(m) for m in (SUPERVISED_METRICS if supervised else RL_METRICS)]
    out.mkdir(parents=True, exist_ok=True)

    tasks: dict[str, list[dict]] = {}
    for run in manifest["runs"]:
        tasks.setdefault(run.get("task") or "", []).append(run)
    table = []
    for task, runs in tasks.items():
        curves = (
            supervised_curves(args.sweep_dir, runs, metrics)
            if supervised
            else rl_curves(args.sweep_dir, runs, metrics, args.bins)
        )
        missing = [name for name, _ in metrics if name not in curves.values]
        if missing:
            print(f"{PROG}: {task or 'sweep'}: no run logs {', '.join(missing)}; left out", file=sys.stderr)
        rows = summarise(curves, args.confidence, args.resamples)
        if not rows:
            print(f"{PROG}: {task or 'sweep'}: nothing to plot", file=sys.stderr)
            continue
        for path in draw(task, curves, rows, out, args.confidence):
            print(f"wrote {path}")
        table += [{"task": task, **row} for row in rows]

    if not table:
        fail(PROG, f"no run of {args.sweep_dir} has logged any of the metrics")
    csv_path = out / "curves.csv"
    text = io.StringIO()
    writer = csv.DictWriter(
        text, fieldnames=["task", "step", "method", "metric", "mean", "lo", "hi", "n_seeds"]
    )
    writer.writeheader()
    writer.writerows(table)
    layout.atomic_write_text(csv_path, text.getvalue())
    print(f"wrote {csv_path} ({len(table)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
