"""Tables (Markdown) and figures (PNG) from a run's ``results.json``.

python scripts/report.py runs/permuted-mnist docs/results/supervised/permuted-mnist
python scripts/report.py --across beta docs/results/supervised/beta-vae runs/vae-b1 runs/vae-b10
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from syre_rl.cli import OneLineParser, UsageError, check_writable, path_arg
from syre_rl.lifecycle import run_command
from syre_rl.runs import RESULTS, write_json
from syre_rl.stats import bootstrap_band

__all__ = [
    "LEGACY_METRICS",
    "LEGACY_NAMES",
    "seed_summary",
    "upgrade_results",
    "write_across",
    "write_report",
]

# Method names of results written before the one registry (docs/methods.md): old name -> registry name.
LEGACY_NAMES = {"vanilla": "none", "wd": "l2"}
# Metric names of results written before the measurements were named for what they compute.
LEGACY_METRICS = {"stable_rank": "srank_fraction"}


def upgrade_results(results: dict[str, Any]) -> dict[str, Any]:
    """Results written under the old names, read under today's (members' methods and metric keys); in place."""
    for member in results.get("members", []):
        member["method"] = LEGACY_NAMES.get(member["method"], member["method"])
        old = member["name"].split("_", 1)
        if old[0] in LEGACY_NAMES:
            member["name"] = "_".join([LEGACY_NAMES[old[0]], *old[1:]])
    for entry in results.get("history", []):
        entry["metrics"] = {
            "/".join(LEGACY_METRICS.get(part, part) for part in key.split("/")): value
            for key, value in entry["metrics"].items()
        }
    return results


def _final(results: dict[str, Any]) -> dict[str, list[float]]:
    return results["history"][-1]["metrics"]


def _setting(member: dict[str, Any]) -> str:
    """A member's name without its seed: the members of one setting differ only in their seed."""
    return member["name"].rsplit("_seed", 1)[0]


def seed_summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every final metric per setting over its seeds: mean, 95% percentile-bootstrap interval of the mean
    (seeds resampled, as for the sweep curves) and the seeds' min and max; one row per setting, in member order.
    """
    metrics, members = _final(results), results["members"]
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(members):
        groups.setdefault(_setting(m), []).append(i)
    rows = []
    for setting, idx in groups.items():
        first = members[idx[0]]
        row: dict[str, Any] = {"setting": setting, "seeds": len(idx)}
        row |= {k: first.get(k, 0.0) for k in ("method", "weight_decay", "sigma0", "dropout")}
        for key in sorted(k for k, v in metrics.items() if isinstance(v, list) and len(v) == len(members)):
            values = np.array([[metrics[key][i]] for i in idx], dtype=np.float64)
            mean, lo, hi, _ = bootstrap_band(values)
            row[key] = {
                "mean": float(mean[0]),
                "lo": float(lo[0]),
                "hi": float(hi[0]),
                "min": float(values.min()),
                "max": float(values.max()),
            }
        rows.append(row)
    return rows


def _write_summary(rows: list[dict[str, Any]], out_dir: Path) -> str:
    """``summary.json`` and ``summary.csv`` (one column per metric and statistic) and a Markdown table."""
    write_json(out_dir / "summary.json", rows)
    fixed = ["setting", "seeds", "method", "weight_decay", "sigma0", "dropout"]
    keys = [k for k in rows[0] if k not in fixed]
    stats = ("mean", "lo", "hi", "min", "max")
    with (out_dir / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fixed + [f"{k}:{s}" for k in keys for s in stats])
        for row in rows:
            writer.writerow([row[k] for k in fixed] + [row[k][s] for k in keys for s in stats])
    shown = [k for k in keys if not k.startswith("test/srank_fraction")]
    table = _table(
        ["setting", "seeds", *shown],
        [
            [
                r["setting"],
                r["seeds"],
                *[_interval(r[k]) for k in shown],
            ]
            for r in rows
        ],
    )
    return (
        "Mean over seeds [95% bootstrap interval of the mean] per setting (all statistics, srank fraction "
        "included: `summary.csv`, `summary.json`):\n\n" + table
    )


def _layers(metrics: dict[str, Any], prefix: str) -> list[str]:
    return sorted(k.rsplit("/", 1)[1] for k in metrics if k.startswith(prefix))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _interval(q: dict[str, float]) -> str:
    """``mean [lo, hi]`` of a seed summary's statistic."""
    return f"{q['mean']:.3g} [{q['lo']:.3g}, {q['hi']:.3g}]"


def _members_table(results: dict[str, Any]) -> str:
    """One row per member: accuracy, then effective rank, srank fraction and dead share of each hidden layer."""
    metrics, names = _final(results), [m["name"] for m in results["members"]]
    layers = _layers(metrics, "test/effective_rank/")
    header = ["member", "test accuracy"]
    header += (
        [f"eff. rank {layer}" for layer in layers]
        + [f"srank fraction {layer}" for layer in layers]
        + [f"dead {layer}" for layer in layers]
    )
    rows = []
    for i, name in enumerate(names):
        row = [name, metrics["test/accuracy"][i]]
        for kind in ("effective_rank", "srank_fraction", "dead_fraction"):
            row += [metrics[f"test/{kind}/{layer}"][i] for layer in layers]
        rows.append(row)
    return _table(header, rows)


def _all_metrics_table(results: dict[str, Any]) -> str:
    """One row per member, one column per final metric."""
    metrics, names = _final(results), [m["name"] for m in results["members"]]
    keys = sorted(metrics)
    return _table(["member", *keys], [[n, *[metrics[k][i] for k in keys]] for i, n in enumerate(names)])


def _symmetry_table(results: dict[str, Any]) -> str:
    """Teacher-student: one row per member, the distinct hidden units (identical ones merged) first."""
    metrics, names = _final(results), [m["name"] for m in results["members"]]
    width = results["config"]["student_hidden"]
    header = [
        "member",
        f"distinct units (of {width})",
        "distinct at start",
        "identical pairs",
        "smallest pair distance",
        "test loss",
    ]
    keys = ("distinct_units", "initial_distinct_units", "identical_pairs")
    rows = [
        [name, *[int(metrics[f"symmetry/{k}"][i]) for k in keys]]
        + [metrics["symmetry/min_pair_distance"][i], metrics["test/loss"][i]]
        for i, name in enumerate(names)
    ]
    return _table(header, rows)


def _permuted_tables(results: dict[str, Any]) -> str:
    names = [m["name"] for m in results["members"]]
    ends = [h for h in results["history"] if "tasks/mean_accuracy" in h["metrics"]]
    starts = [h for h in results["history"] if any(k.startswith("start/") for k in h["metrics"])]
    layers = _layers(starts[0]["metrics"], "start/effective_rank/")
    last = layers[-1]
    out = ["Accuracy on each new task right after training on it:", ""]
    out.append(_table(["task", *names], [[h["task"], *h["metrics"]["test/accuracy"]] for h in ends]))
    out += ["", "Mean accuracy over all tasks seen so far (forgetting included):", ""]
    out.append(_table(["task", *names], [[h["task"], *h["metrics"]["tasks/mean_accuracy"]] for h in ends]))
    for kind, title in (
        ("effective_rank", "Effective rank"),
        ("srank_fraction", "srank (99% of the singular values' sum) as a fraction of width"),
        ("dead_fraction", "Dead units (share)"),
    ):
        out += [
            "",
            f"{title} of the last hidden layer ({last}) at each task's start, on the new task's inputs:",
            "",
        ]
        out.append(
            _table(["task", *names], [[h["task"], *h["metrics"][f"start/{kind}/{last}"]] for h in starts])
        )
    out += ["", "Accuracy on every task after the last one:", ""]
    final = ends[-1]["metrics"]
    tasks = sorted(int(k.rsplit("task", 1)[1]) for k in final if k.startswith("tasks/accuracy_task"))
    out.append(
        _table(
            ["member", *[f"task {t}" for t in tasks]],
            [[n, *[final[f"tasks/accuracy_task{t}"][i] for t in tasks]] for i, n in enumerate(names)],
        )
    )
    return "\n".join(out)


def _plot_permuted(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = [m["name"] for m in results["members"]]
    ends = [h for h in results["history"] if "tasks/mean_accuracy" in h["metrics"]]
    starts = [h for h in results["history"] if any(k.startswith("start/") for k in h["metrics"])]
    last = _layers(starts[0]["metrics"], "start/effective_rank/")[-1]
    panels = [
        (ends, "test/accuracy", "accuracy on the new task"),
        (ends, "tasks/mean_accuracy", "mean accuracy, tasks seen"),
        (starts, f"start/effective_rank/{last}", f"effective rank at task start ({last})"),
        (starts, f"start/dead_fraction/{last}", f"dead units at task start ({last})"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (hist, key, title) in zip(axes, panels, strict=True):
        for i, name in enumerate(names):
            ax.plot(
                [h["task"] for h in hist], [h["metrics"][key][i] for h in hist], marker="o", ms=3, label=name
            )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("task")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_sweep(rows: list[dict[str, Any]], path: Path) -> None:
    """Accuracy, first/last-layer effective rank and last-layer dead units against decay (l2, syre per sigma0),
    and the dropout baseline: the mean over seeds with its bootstrap interval; ``none`` as horizontal lines."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    layers = sorted(k.rsplit("/", 1)[1] for k in rows[0] if k.startswith("test/effective_rank/"))
    first, last = layers[0], layers[-1]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    rank_axis = axes[2].twinx()
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        label = f"syre s0={r['sigma0']:g}" if r["method"] == "syre" else r["method"]
        groups.setdefault(label, []).append(r)

    def band(ax, x, group, key, fmt, **kw):
        mean = [r[key]["mean"] for r in group]
        err = [[r[key]["mean"] - r[key]["lo"] for r in group], [r[key]["hi"] - r[key]["mean"] for r in group]]
        return ax.errorbar(x, mean, yerr=err, fmt=fmt, capsize=2, ms=4, **kw)

    for label, group in groups.items():
        if label == "dropout":
            x = [r["dropout"] for r in group]
            band(axes[2], x, group, "test/accuracy", "o-", color="C0", label="accuracy")
            for layer, fmt in ((first, "s--"), (last, "^:")):
                band(
                    rank_axis,
                    x,
                    group,
                    f"test/effective_rank/{layer}",
                    fmt,
                    color="C3",
                    label=f"eff. rank {layer}",
                )
            continue
        if label == "none":
            reference = (
                (axes[0], "test/accuracy", "--"),
                (axes[1], f"test/effective_rank/{first}", "--"),
                (axes[1], f"test/effective_rank/{last}", ":"),
                (axes[3], f"test/dead_fraction/{last}", ":"),
            )
            for ax, key, style in reference:
                ax.axhline(group[0][key]["mean"], color="k", lw=0.8, ls=style, label=f"none, {key[5:]}")
            continue
        x = [r["weight_decay"] for r in group]
        line = band(axes[0], x, group, "test/accuracy", "o-", label=label)
        color = line.lines[0].get_color()
        for layer, fmt in ((first, "s-"), (last, "^:")):
            band(
                axes[1], x, group, f"test/effective_rank/{layer}", fmt, color=color, label=f"{label}, {layer}"
            )
        band(axes[3], x, group, f"test/dead_fraction/{last}", "^:", color=color, label=label)
    axes[0].set(xscale="log", xlabel="weight decay", title="test accuracy (mean, 95% interval over seeds)")
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel="weight decay",
        title=f"effective rank ({first} solid, {last} dotted)",
    )
    axes[2].set(xlabel="dropout rate", ylabel="test accuracy", title="dropout baseline (no weight decay)")
    axes[3].set(xscale="log", xlabel="weight decay", title=f"dead units, share ({last})")
    rank_axis.set_ylabel("effective rank")
    for ax in (*axes, rank_axis):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="lower left" if ax is not rank_axis else "lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write ``results.json`` (copied), ``tables.md`` and a figure for the run into ``out_dir``."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    results = upgrade_results(json.loads((run_dir / RESULTS).read_text()))
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / RESULTS, out_dir / RESULTS)
    name = results["experiment"]
    header = (
        f"# {name}: results\n\nPreset `{results['preset']}`, {len(results['members'])} members, "
        f"{results['stages_done']}/{results['stages']} stages, {results['train_seconds']:.0f} s on "
        f"{results['device']}. Configuration: `{json.dumps(results['config'])}`\n\n"
    )
    if name == "permuted-mnist":
        body = _permuted_tables(results)
        _plot_permuted(results, out_dir / "figure.png")
    elif name == "teacher-student":
        body = _symmetry_table(results)
    elif "test/accuracy" not in _final(results):
        body = _all_metrics_table(results)
    else:
        body = _members_table(results)
    if name not in ("permuted-mnist", "teacher-student"):
        rows = seed_summary(results)
        body = _write_summary(rows, out_dir) + "\n\nEvery member:\n\n" + body
        if name == "mnist-fcn-wd":
            _plot_sweep(rows, out_dir / "figure.png")
    (out_dir / "tables.md").write_text(header + body + "\n")
    return out_dir


def write_across(field: str, run_dirs: list[str | Path], out_dir: str | Path) -> Path:
    """Runs that differ in one preset field (``beta`` of ``beta-vae``): each setting's seed summary per value of
    the field, as ``across.csv`` / ``across.json``, ``across.md`` (one table per metric) and ``across.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for run_dir in run_dirs:
        results = upgrade_results(json.loads((Path(run_dir) / RESULTS).read_text()))
        rows += [{field: results["config"][field], **row} for row in seed_summary(results)]
    rows.sort(key=lambda r: r[field])
    metrics = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    write_json(out_dir / "across.json", rows)
    stats = ("mean", "lo", "hi", "min", "max")
    with (out_dir / "across.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([field, "setting", "seeds"] + [f"{k}:{s}" for k in metrics for s in stats])
        for r in rows:
            writer.writerow([r[field], r["setting"], r["seeds"]] + [r[k][s] for k in metrics for s in stats])
    values = sorted({r[field] for r in rows})
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    cell = {(r["setting"], r[field]): r for r in rows}
    parts = [f"# Across {field}: mean over seeds [95% bootstrap interval of the mean]"]
    for key in metrics:
        table_rows = [
            [name, *[_interval(cell[name, v][key]) if (name, v) in cell else "" for v in values]]
            for name in settings
        ]
        parts += [f"## {key}", _table(["setting", *[f"{field} {v:g}" for v in values]], table_rows)]
    (out_dir / "across.md").write_text("\n\n".join(parts) + "\n")

    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    shown = [k for k in metrics if not k.startswith("train/")]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6))
    for ax, key in zip(list(axes) if len(shown) > 1 else [axes], shown, strict=True):
        for name in settings:
            pts = [cell[name, v][key] for v in values if (name, v) in cell]
            xs = [v for v in values if (name, v) in cell]
            mean = [q["mean"] for q in pts]
            err = [[q["mean"] - q["lo"] for q in pts], [q["hi"] - q["mean"] for q in pts]]
            ax.errorbar(xs, mean, yerr=err, fmt="o-", capsize=2, ms=4, label=name)
        ax.set(xlabel=field, title=key)
    fig.axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "across.png", dpi=110)
    plt.close(fig)
    return out_dir


# ------------------------------------------------------------------------------------------ command line
PROG = "report.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description="Tables (Markdown) and figures (PNG) of a supervised run, from its results.json.")
    p.add_argument("run_dir", type=path_arg, help="a train_supervised.py run directory (OUT_DIR with --across)")
    p.add_argument("out_dir", type=path_arg, help="where the tables and figures go (a RUN_DIR with --across)")
    p.add_argument("more_runs", type=path_arg, nargs="*", help="--across: further run directories")
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


def check(args: argparse.Namespace) -> None:
    for run_dir in args.runs:
        results = run_dir / RESULTS
        try:
            config = json.loads(results.read_text())["config"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UsageError(f"cannot read {results}: {err}") from None
        if args.across and args.across not in config:
            raise UsageError(f"{results} has no preset field {args.across!r}")
    check_writable(args.out_dir, "output directory")


def run(args: argparse.Namespace) -> int:
    if args.across:
        print(write_across(args.across, args.runs, args.out_dir))
    else:
        print(write_report(args.run_dir, args.out_dir))
    return 0




def main(argv: list[str] | None = None) -> int:
    return run_command(sys.modules[__name__], argv)  # type: ignore[arg-type]
