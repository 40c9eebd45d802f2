"""Report a plasticity benchmark: the plasticity figure per arm over tasks, and its first-vs-last change.

    python scripts/plasticity_report.py runs/sweeps/supervised-plasticity-bit-flipping \\
        --figure train/loss --baseline linear --out docs/results/plasticity/bit-flipping

Reads every ``results.json`` under the given sweep or run directories (a stacked run holds many members), groups
members by arm (the member's name without its seed; members of a ``--baseline`` run form the baseline) and writes
to ``--out``: ``figure.png`` (mean and 95% bootstrap band over seeds per arm of the plasticity figure, and the
effective rank and dead share of the last hidden layer), ``summary.csv`` / ``summary.json`` (per arm: the mean of
the first and the last 10% of tasks, their difference per seed with a bootstrap interval over seeds, and the final
value; ``summary.md`` the same as tables) and ``curves.csv``. Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from syre_rl.cli import OneLineParser, UsageError, check_writable, finite_float, path_arg, positive_int
from syre_rl.lifecycle import run_command
from syre_rl.runs import atomic_write_text, write_json
from syre_rl.stats import bootstrap_band
from syre_rl.supervised.continual import plasticity_change

__all__ = ["arm_curves", "summarise", "main"]

PROG = "plasticity_report.py"
HIDDEN = {"effective rank": "hidden/effective_rank", "dead units": "hidden/dead_fraction"}


def _result_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if (path / "results.json").is_file():
            files.append(path / "results.json")
        elif path.is_dir():
            files += sorted(path.glob("*/results.json"))
        else:
            raise UsageError(f"{path} is not a directory")
    if not files:
        raise UsageError(f"no results.json in {', '.join(map(str, paths))}")
    return files


def _run_label(results_file: Path) -> str:
    """The sweep's method label of a run (its directory ``<experiment>-<label>-s<seed>``), else its name."""
    name = results_file.parent.name
    experiment = json.loads(results_file.read_text()).get("experiment", "")
    label = re.sub(r"-s\d+$", "", name)
    return label[len(experiment) + 1 :] if experiment and label.startswith(experiment + "-") else label


def arm_curves(
    files: list[Path], keys: list[str], baseline: str | None = None
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, list[int]]]:
    """``{key: {arm: [seeds, stages]}}`` from results files (NaN where a stage is missing), and each arm's seeds
    in the order of its rows.

    A member's arm is its name without ``_seed<N>``; members of the run labelled ``baseline`` get that label.
    """
    out: dict[str, dict[str, list[np.ndarray]]] = {k: {} for k in keys}
    seeds: dict[str, list[int]] = {}
    for file in files:
        try:
            results = json.loads(file.read_text())
            stages, history, members = results["stages"], results["history"], results["members"]
        except (OSError, ValueError, KeyError) as err:
            raise UsageError(f"{file} is not a supervised results.json ({err})") from None
        is_baseline = baseline is not None and _run_label(file) == baseline
        for i, member in enumerate(members):
            arm = baseline if is_baseline else re.sub(r"_seed\d+$", "", member["name"])
            seeds.setdefault(arm, []).append(int(member["seed"]))
            for key in keys:
                curve = np.full(stages, np.nan)
                for h in history:
                    if key in h["metrics"]:
                        curve[h["stage"]] = h["metrics"][key][i]
                if not np.isnan(curve).all():
                    out[key].setdefault(arm, []).append(curve)
    return {k: {arm: np.stack(c) for arm, c in by_arm.items()} for k, by_arm in out.items()}, seeds


def _interval(values: np.ndarray, confidence: float, resamples: int) -> tuple[float, float, float]:
    mean, lo, hi, _ = bootstrap_band(values[:, None], confidence, resamples)
    return float(mean[0]), float(lo[0]), float(hi[0])


def _finished(c: np.ndarray) -> np.ndarray:
    """The stages every seed finished (a prefix)."""
    done = ~np.isnan(c).any(0)
    return c[:, : int(np.argmin(done)) if not done.all() else c.shape[1]]


def _paired_last(a: np.ndarray, b: np.ndarray, seeds_a: list[int], seeds_b: list[int], k: int) -> np.ndarray:
    """Per shared seed, the mean of ``a``'s last ``k`` stages minus ``b``'s (empty unless both have as many)."""
    if a.shape[1] != b.shape[1]:
        return np.array([])
    row_b = {s: i for i, s in enumerate(seeds_b)}
    pairs = [(i, row_b[s]) for i, s in enumerate(seeds_a) if s in row_b]
    return np.array([a[i, -k:].mean() - b[j, -k:].mean() for i, j in pairs])


def summarise(
    curves: dict[str, np.ndarray],
    share: float = 0.1,
    confidence: float = 0.95,
    resamples: int = 2000,
    seeds: dict[str, list[int]] | None = None,
    reference: str | None = None,
    baseline: str | None = None,
) -> list[dict[str, Any]]:
    """Per arm: first and last ``share`` of the tasks, their change per seed (mean and bootstrap interval over
    seeds), the final value; only stages every seed of the arm finished count. With ``seeds``, also the final
    value minus the ``reference`` arm's (``vs_reference``; default the plain arm, ``none`` or ``vanilla``) and, for a syre arm, minus L2's at the same decay
    (``vs_l2``), and minus the ``baseline`` arm's (``vs_baseline``), seed by seed (paired: the seeds both arms have, when both finished the same stages)."""
    rows = []
    reference = reference or ("none" if "none" in curves else "vanilla")  # the plain arm's name, new or old
    for arm, c in curves.items():
        c = _finished(c)
        if c.shape[1] < 2:
            continue
        k = max(1, round(share * c.shape[1]))
        change = plasticity_change(c, share).numpy()
        first, last = c[:, :k].mean(1), c[:, -k:].mean(1)
        m, lo, hi = _interval(change, confidence, resamples)
        fm, flo, fhi = _interval(last, confidence, resamples)
        sm, slo, shi = _interval(first, confidence, resamples)
        rows.append(
            {"arm": arm, "seeds": int(c.shape[0]), "stages": int(c.shape[1]), "window": k,
             "first": sm, "first_lo": slo, "first_hi": shi, "last": fm, "last_lo": flo, "last_hi": fhi,
             "change": m, "change_lo": lo, "change_hi": hi, "excludes_zero": bool(lo > 0 or hi < 0)}
        )  # fmt: skip
        if seeds is None:
            continue
        decay = re.match(r"syre_(wd[^_]+)_", arm)
        l2 = next(
            (f"{n}_{decay.group(1)}" for n in ("l2", "wd") if decay and f"{n}_{decay.group(1)}" in curves),
            None,
        )
        for field_, other in (("vs_reference", reference), ("vs_l2", l2), ("vs_baseline", baseline)):
            if other is None or other == arm or other not in curves:
                continue
            diff = _paired_last(c, _finished(curves[other]), seeds[arm], seeds[other], k)
            if len(diff):
                dm, dlo, dhi = _interval(diff, confidence, resamples)
                rows[-1].update({field_: dm, f"{field_}_lo": dlo, f"{field_}_hi": dhi})
    return rows


def _binned(c: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of ``k`` consecutive stages per seed (the last bin may be shorter), and each bin's centre stage."""
    edges = list(range(0, c.shape[1], k)) + [c.shape[1]]
    binned = np.stack([c[:, a:b].mean(1) for a, b in zip(edges[:-1], edges[1:], strict=True)], 1)
    return binned, np.array([(a + b + 1) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)])


def _draw(
    curves: dict[str, dict[str, np.ndarray]],
    figure: str,
    label: str,
    out: Path,
    arms: list[str],
    baseline: str | None,
    smooth: int,
    x_label: str,
) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = [(label, figure)] + [(n, k) for n, k in HIDDEN.items() if curves.get(k)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.4), squeeze=False)
    drawn = [a for a in arms if a != baseline]
    palette = plt.get_cmap("tab20").colors if len(drawn) > 10 else [f"C{i}" for i in range(10)]
    colors = {a: palette[i % len(palette)] for i, a in enumerate(drawn)}
    for ax, (title, key) in zip(axes[0], panels, strict=True):
        for arm in arms:
            if arm not in curves[key]:
                continue
            c, x = _binned(curves[key][arm], smooth)
            mean, lo, hi, _ = bootstrap_band(c)
            style = {"linestyle": "--", "color": "k"} if arm == baseline else {"color": colors[arm]}
            ax.plot(x, mean, label=f"{arm} ({c.shape[0]} seeds)", linewidth=1.3, **style)
            ax.fill_between(x, lo, hi, alpha=0.15, color=style["color"])
        ax.set_title(title + (f" (means of {smooth} stages)" if smooth > 1 else ""), fontsize="medium")
        ax.set_xlabel(x_label)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize="small")
    fig.suptitle("mean and 95% bootstrap band over seeds")
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(labels) - 1) // 5), 1, 1))
    fig.savefig(out / "figure.png", dpi=110)
    plt.close(fig)


def _markdown(table: list[dict[str, Any]], share: float, baseline: str | None) -> str:
    """The summary as Markdown tables: the plasticity figure first, then the hidden-layer measures."""
    out = []
    for key in dict.fromkeys(r["metric"] for r in table):
        rows = [r for r in table if r["metric"] == key]
        out += [
            f"`{key}`: first and last {100 * share:g}% of the stages (mean over seeds, 95% bootstrap interval), "
            "the change per seed, and the last value minus the plain arm's and (syre) minus L2's at the same decay, "
            "seed by seed",
            "",
            "| arm | seeds | first | last | change (last - first) | last minus the plain arm's | last minus L2's |"
            + (f" last minus {baseline}'s |" if baseline else ""),
            "|---|---|---|---|---|---|---|" + ("---|" if baseline else ""),
        ]
        for r in rows:
            mark = " *" if r["excludes_zero"] else ""
            out.append(
                f"| {r['arm']} | {r['seeds']} | {r['first']:.4f} [{r['first_lo']:.4f}, {r['first_hi']:.4f}] | "
                f"{r['last']:.4f} [{r['last_lo']:.4f}, {r['last_hi']:.4f}] | "
                f"{r['change']:+.4f} [{r['change_lo']:+.4f}, {r['change_hi']:+.4f}]{mark} | "
                + " | ".join(
                    f"{r[f]:+.4f} [{r[f + '_lo']:+.4f}, {r[f + '_hi']:+.4f}]" if f in r else ""
                    for f in ("vs_reference", "vs_l2", *(("vs_baseline",) if baseline else ()))
                )
                + " |"
            )
        out.append("")
    out.append("`*`: the interval of the change excludes zero.")
    return "\n".join(out) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("paths", type=path_arg, nargs="+", help="sweep or run directories")
    p.add_argument("--figure", required=True, help="the plasticity figure's metric, e.g. train/online_accuracy")
    p.add_argument("--label", help="its axis title (default: the metric)")
    p.add_argument("--baseline", help="sweep method label of a reference run (e.g. linear)")
    p.add_argument("--smooth", type=positive_int, default=1, help="draw means of this many stages (tables unaffected)")
    p.add_argument("--x-label", default="task", help="the stages' name on the x axis (default: task)")
    p.add_argument("--share", type=finite_float, default=0.1, help="share of tasks at each end (default 0.1)")
    p.add_argument("--out", type=path_arg, required=True)
    return p.parse_args(argv)


def check(args: argparse.Namespace) -> None:
    if not 0 < args.share <= 0.5:
        raise UsageError(f"--share must be in (0, 0.5], got {args.share}")
    check_writable(args.out, "--out")


def _write_tables(table: list[dict[str, Any]], curves: dict[str, Any], keys: list[str], args: argparse.Namespace) -> None:
    fields = list(dict.fromkeys(k for row in table for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(table)
    atomic_write_text(args.out / "summary.csv", text.getvalue())
    write_json(args.out / "summary.json", table)
    text = io.StringIO()
    rows = csv.writer(text)
    rows.writerow(["metric", "arm", "stage", "mean", "lo", "hi", "seeds"])
    for key in keys:
        for arm, c in curves[key].items():
            mean, lo, hi, n = bootstrap_band(c)
            for s in range(c.shape[1]):
                if n[s]:
                    rows.writerow([key, arm, s + 1, f"{mean[s]:.6g}", f"{lo[s]:.6g}", f"{hi[s]:.6g}", int(n[s])])
    atomic_write_text(args.out / "curves.csv", text.getvalue())
    atomic_write_text(args.out / "summary.md", _markdown(table, args.share, args.baseline))


def run(args: argparse.Namespace) -> int:
    files = _result_files(args.paths)
    keys = [args.figure, *HIDDEN.values()]
    curves, seeds = arm_curves(files, keys, args.baseline)
    if not curves[args.figure]:
        raise UsageError(f"no run logged {args.figure!r}")
    arms = list(curves[args.figure])
    args.out.mkdir(parents=True, exist_ok=True)
    table = []
    for key in keys:
        for row in summarise(curves[key], args.share, seeds=seeds, baseline=args.baseline):
            table.append({"metric": key, **row})
    _write_tables(table, curves, keys, args)
    _draw(curves, args.figure, args.label or args.figure, args.out, arms, args.baseline, args.smooth, args.x_label)
    for row in table:
        if row["metric"] == args.figure:
            print(
                f"{row['arm']:28s} n={row['seeds']:3d} first {row['first']:.4f} last {row['last']:.4f} "
                f"change {row['change']:+.4f} [{row['change_lo']:+.4f}, {row['change_hi']:+.4f}]"
            )
    print(f"wrote {args.out}/figure.png, summary.csv, summary.json, curves.csv")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(sys.modules[__name__], argv)  # type: ignore[arg-type]
