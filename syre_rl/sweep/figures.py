"""Figures and the CSV of a sweep: mean over seeds and a bootstrap band per method, one figure per task.

RL sweeps (train_ppo.py runs) are read from their TensorBoard event files and binned by environment steps;
regime changes are marked where ``env/regime_index`` changes (else every ``change_every`` steps of the task).
Supervised sweeps are read from each run's ``results.json``, one point per stage, grouped by member (method and
sweep values) over seeds. A metric is ``NAME=PATTERN[|PATTERN...]``: the first pattern (fnmatch glob) that
matches any run's tags is used, and several matching tags are averaged (e.g. over layers). ``scripts/plot.py``
is the command line of :func:`plot_sweep`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from syre_rl import runs as layout
from syre_rl.cli import UsageError
from syre_rl.stats import bootstrap_band, nan_mean
from syre_rl.sweep.curves import (
    bin_means,
    read_scalars,
    regime_changes,
    select_tags,
)
from syre_rl.sweep.grid import read_manifest

__all__ = ["RL_METRICS", "SUPERVISED_METRICS", "parse_metric", "plot_sweep", "read_sweep"]

Warn = Callable[[str], None]
Metric = tuple[str, list[str]]


def _stderr(message: str) -> None:
    print(f"plot: {message}", file=sys.stderr)


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


def parse_metric(text: str) -> Metric:
    """``NAME=PATTERN[|PATTERN...]`` as ``(name, patterns)``; ValueError if malformed."""
    name, sep, patterns = text.partition("=")
    if not sep or not name.strip() or not patterns.strip():
        raise ValueError(f"expected NAME=PATTERN[|PATTERN...], got {text!r}")
    return name.strip(), [p.strip() for p in patterns.split("|") if p.strip()]


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
    sweep_dir: Path, runs: list[dict], metrics: list[tuple[str, list[str]]], bins: int, warn: Warn = _stderr
) -> TaskCurves:
    scalars = {}
    for run in runs:
        tb = sweep_dir / run["id"] / layout.TB
        if not tb.is_dir():
            warn(f"{run['id']} has no event files yet; left out")
            continue
        scalars[run["id"]] = read_scalars(tb)
        if not scalars[run["id"]]:
            warn(f"{run['id']}: its event files hold no readable scalars (empty or corrupt); left out")
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
def supervised_curves(
    sweep_dir: Path, runs: list[dict], metrics: list[tuple[str, list[str]]], warn: Warn = _stderr
) -> TaskCurves:
    """One point per stage for every member of every run, grouped by the member's name without its seed."""
    from syre_rl.supervised.report import upgrade_results  # noqa: PLC0415  (results under older names)

    results = []
    for run in runs:
        try:
            data = upgrade_results(json.loads((sweep_dir / run["id"] / layout.RESULTS).read_text()))
            if not (isinstance(data.get("stages"), int) and isinstance(data.get("history"), list)
                    and isinstance(data.get("members"), list)):  # fmt: skip
                raise ValueError("not the results of a supervised run")
            results.append(data)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            warn(f"{run['id']} has no readable results.json yet; left out")
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


_RUN_ID = re.compile(r"[A-Za-z0-9_+=-][A-Za-z0-9_.+=-]*")  # a plain folder name, as the sweep writes them


def read_sweep(sweep_dir: Path) -> dict:
    """The sweep's ``sweep.json``, every run with an id (a plain folder name: no ``/``, not ``..``) and a
    method (else :class:`UsageError`)."""
    manifest = read_manifest(sweep_dir)
    for i, run in enumerate(manifest["runs"]):
        if not (isinstance(run, dict) and isinstance(run.get("id"), str) and run["id"]):
            raise UsageError(f"{Path(sweep_dir) / 'sweep.json'}: run {i} has no id")
        if not _RUN_ID.fullmatch(run["id"]):
            raise UsageError(
                f"{Path(sweep_dir) / 'sweep.json'}: run id {run['id']!r} is not a plain folder name of the sweep"
            )
        if not isinstance(run.get("method"), str):
            raise UsageError(f"{Path(sweep_dir) / 'sweep.json'}: run {run['id']} has no method")
    return manifest


def plot_sweep(
    sweep_dir: Path,
    out: Path,
    *,
    metrics: list[Metric] | None = None,
    bins: int = 50,
    confidence: float = 0.95,
    resamples: int = 2000,
    log: Callable[[str], None] = print,
    warn: Warn = _stderr,
) -> Path:
    """Write ``out/<task>.png`` and ``.svg`` per task and ``out/curves.csv`` (task, step, method, metric, mean,
    lo, hi, n_seeds); returns the CSV's path. Metrics no run has are left out (with a warning).

    :raises UsageError, PresetError: no readable sweep.json, or no run logged any of the metrics
    """
    manifest = read_sweep(sweep_dir)
    supervised = manifest.get("script") == "train_supervised"
    metrics = metrics or [parse_metric(m) for m in (SUPERVISED_METRICS if supervised else RL_METRICS)]
    tasks: dict[str, list[dict]] = {}
    for run in manifest["runs"]:
        tasks.setdefault(run.get("task") or "", []).append(run)
    left_out: list[str] = []

    def note(message: str) -> None:  # runs without readable logs are named in the error if nothing is left
        left_out.append(message.split(" ", 1)[0].rstrip(":"))
        warn(message)

    # Everything is read and summarised before anything is written: a failure leaves no empty folder behind.
    plotted = []
    for task, task_runs in tasks.items():
        curves = (
            supervised_curves(sweep_dir, task_runs, metrics, note)
            if supervised
            else rl_curves(sweep_dir, task_runs, metrics, bins, note)
        )
        missing = [name for name, _ in metrics if name not in curves.values]
        if missing:
            warn(f"{task or 'sweep'}: no run logs {', '.join(missing)}; left out")
        rows = summarise(curves, confidence, resamples)
        if not rows:
            warn(f"{task or 'sweep'}: nothing to plot")
            continue
        plotted.append((task, curves, rows))
    if not plotted:
        why = f" ({len(left_out)} without readable logs: {', '.join(left_out[:3])})" if left_out else ""
        raise UsageError(
            f"no run of {sweep_dir} has logged any of the metrics "
            f"{', '.join(name for name, _ in metrics)}{why}"
        )
    out.mkdir(parents=True, exist_ok=True)
    table = []
    for task, curves, rows in plotted:
        for path in draw(task, curves, rows, out, confidence):
            log(f"wrote {path}")
        table += [{"task": task, **row} for row in rows]
    csv_path = out / "curves.csv"
    text = io.StringIO()
    writer = csv.DictWriter(
        text, fieldnames=["task", "step", "method", "metric", "mean", "lo", "hi", "n_seeds"]
    )
    writer.writeheader()
    writer.writerows(table)
    layout.atomic_write_text(csv_path, text.getvalue())
    log(f"wrote {csv_path} ({len(table)} rows)")
    return csv_path
