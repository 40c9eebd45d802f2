"""Tables (Markdown) and figures (PNG) from a run's ``results.json``.

python scripts/report.py runs/permuted-mnist docs/results/supervised/permuted-mnist
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from syre_rl.runs import RESULTS

__all__ = ["LEGACY_METRICS", "LEGACY_NAMES", "upgrade_results", "write_report"]

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


def _layers(metrics: dict[str, Any], prefix: str) -> list[str]:
    return sorted(k.rsplit("/", 1)[1] for k in metrics if k.startswith(prefix))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


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


def _plot_sweep(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    metrics, members = _final(results), results["members"]
    layers = _layers(metrics, "test/effective_rank/")
    first, last = layers[0], layers[-1]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    rank_axis = axes[2].twinx()
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(members):
        label = f"syre s0={m['sigma0']:g}" if m["method"] == "syre" else m["method"]
        groups.setdefault(label, []).append(i)
    for label, idx in groups.items():
        if label == "dropout":
            x = [members[i]["dropout"] for i in idx]
            axes[2].plot(
                x, [metrics["test/accuracy"][i] for i in idx], marker="o", color="C0", label="accuracy"
            )
            for layer, style in ((first, "s--"), (last, "^:")):
                rank = [metrics[f"test/effective_rank/{layer}"][i] for i in idx]
                rank_axis.plot(x, rank, style, color="C3", label=f"eff. rank {layer}")
            continue
        x = [members[i]["weight_decay"] for i in idx]
        (line,) = axes[0].plot(x, [metrics["test/accuracy"][i] for i in idx], marker="o", label=label)
        for layer, style in ((first, "s-"), (last, "^:")):
            rank = [metrics[f"test/effective_rank/{layer}"][i] for i in idx]
            axes[1].plot(x, rank, style, color=line.get_color(), label=f"{label}, {layer}")
    axes[0].set(xscale="log", xlabel="weight decay", title="test accuracy")
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel="weight decay",
        title=f"effective rank ({first} solid, {last} dotted)",
    )
    axes[2].set(xlabel="dropout rate", ylabel="test accuracy", title="dropout baseline (no weight decay)")
    rank_axis.set_ylabel("effective rank")
    for ax in (*axes, rank_axis):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower left" if ax is not rank_axis else "lower right")
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
        if name == "mnist-fcn-wd":
            _plot_sweep(results, out_dir / "figure.png")
    (out_dir / "tables.md").write_text(header + body + "\n")
    return out_dir
