"""Tables and figures of an RL plasticity sweep (rl-plasticity runs): mean and 95% interval per arm.

    python scripts/report_rl_plasticity.py runs/sweeps/rl-vec-pendulum-plasticity --out docs/results/rl/vec-pendulum

Reads ``sweep.json`` and every finished run's ``results.json``; an arm is a method label plus its grid params.
Writes ``table.csv`` (per arm and summary: mean, 95% t-interval over seeds, seeds; and each arm's
``figure_after`` and ``return_regime0`` minus the ``--baseline`` arm's, paired by seed), ``regimes.csv`` (per arm
and regime), ``runs.csv`` (per run and regime) and ``figure.png`` (regime return with the fresh agents' as a dashed line, the plasticity figure, and the
effective rank and dead fraction of actor and critic per regime). Summary rows:

- ``return_regime0``: regime return in the first regime, before any change;
- ``figure_regime0``: plasticity figure in the first regime (against fresh plain PPO: what the method itself
  costs or gains before any change; 0 for plain PPO by construction);
- ``figure_after``: plasticity figure averaged over regimes 1..R-1 (continuing minus fresh; 0 = no loss);
- ``return_after``: the regime return averaged over regimes 1..R-1 (an arm whose fresh agents differ from plain
  PPO's, such as LayerNorm, has its figure against its own fresh agent: its return says whether it is also the
  better agent);
- ``drop``: ``figure_after - figure_regime0`` per seed: how far the figure falls once the task starts changing
  (below 0 with an interval that excludes 0: the agent lost plasticity);
- ``figure_last``: the last regime's figure, and ``recovery`` = last minus regime 1 (above 0: the agent
  regains some plasticity over the run);
- ``late_minus_early``: the figure's mean over the last third of regimes 1..R-1 minus its mean over the first
  third (below 0 with an interval that excludes 0: plasticity keeps draining as changes accumulate).

``summary.md`` states the checks of the study before any comparison: whether the ``--baseline`` arm lost
plasticity (``figure_after`` or ``late_minus_early`` with an interval below 0), whether the ``--control`` arm (a
fresh network at each change) scores about 0 (its ``figure_after`` interval holds 0, or its mean is within 10% of
the baseline's loss; said at the top when it does not), and which arms separate from the baseline (paired
``figure_after`` difference with an interval that excludes 0).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from syre_rl import runs as layout
from syre_rl.cli import OneLineParser, UsageError, check_writable, path_arg
from syre_rl.lifecycle import run_command
from syre_rl.runs import atomic_write_text
from syre_rl.stats import t_interval as interval
from syre_rl.sweep.figures import read_sweep

PROG = "report_rl_plasticity.py"

METRICS = [
    ("plasticity/actor/effective_rank", "actor effective rank"),
    ("plasticity/critic/effective_rank", "critic effective rank"),
    ("plasticity/actor/dead_fraction", "actor dead fraction"),
    ("plasticity/critic/dead_fraction", "critic dead fraction"),
]


ROW_KEYS = ("regime_return", "figure")
RESULT_KEYS = ("seed", "rows", "steps_per_second")


def arm_label(run: dict) -> str:
    """A run's arm: its method label and its grid parameters."""
    params = " ".join(f"{k.lstrip('-')}={v}" for k, v in (run.get("params") or {}).items())
    return f"{run['method']} {params}".strip()


def read_plasticity_results(path: Path) -> dict[str, Any]:
    """A run's ``results.json``, with the fields the report reads (else :class:`UsageError` naming the file)."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UsageError(
            f"{path} is unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from None
    if not isinstance(results, dict):
        raise UsageError(f"{path} is not the results of an rl_plasticity.py run")
    missing = [key for key in RESULT_KEYS if key not in results]
    rows = results.get("rows")
    if missing or not isinstance(rows, list) or not rows:
        raise UsageError(
            f"{path} is not the results of an rl_plasticity.py run (no {', '.join(missing) or 'rows'})"
        )
    for k, row in enumerate(rows):
        if not (isinstance(row, dict) and all(key in row for key in ROW_KEYS)):
            raise UsageError(f"{path}: row {k} lacks {' or '.join(ROW_KEYS)}")
    return results


def load_plasticity_sweep(sweep_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The results of every finished run of the sweep, by arm (runs without ``results.json`` are left out)."""
    manifest = read_sweep(sweep_dir)  # a readable sweep.json whose runs have plain ids and a method
    arms: dict[str, list[dict[str, Any]]] = {}
    for run in manifest["runs"]:
        path = Path(sweep_dir) / run["id"] / layout.RESULTS
        if path.is_file():
            results = read_plasticity_results(path)
            if results.get("done"):
                arms.setdefault(arm_label(run), []).append(results)
    return arms


def per_seed_summary(results: dict) -> dict[str, float]:
    fig = [r["figure"] if r["figure"] is not None else math.nan for r in results["rows"]]
    after = float(np.nanmean(fig[1:])) if len(fig) > 1 else math.nan
    changed = fig[1:]
    third = len(changed) // 3
    trend = float(np.nanmean(changed[-third:]) - np.nanmean(changed[:third])) if third else math.nan
    returns = [r["regime_return"] for r in results["rows"]]
    return {
        "return_regime0": returns[0],
        "return_after": float(np.nanmean(returns[1:])) if len(returns) > 1 else math.nan,
        "figure_regime0": fig[0],
        "figure_after": after,
        "drop": after - fig[0],
        "figure_last": fig[-1] if len(fig) > 1 else math.nan,
        "recovery": fig[-1] - fig[1] if len(fig) > 2 else math.nan,
        "late_minus_early": trend,
        "steps_per_second": results["steps_per_second"],
    }


def _cell(row: dict | None) -> str:
    return f"{row['mean']:+.0f} [{row['lo']:+.0f}, {row['hi']:+.0f}] ({row['seeds']} seeds)" if row else "not run"


def _below(row: dict | None) -> bool:
    return bool(row) and row["hi"] < 0


def checks(by: dict[tuple[str, str], dict], arms: list[str], baseline: str, control: str) -> str:
    """The study's checks in words: the phenomenon, the control, and which arms separate from the baseline."""
    lines = []
    loss, trend = by.get((baseline, "figure_after")), by.get((baseline, "late_minus_early"))
    ctrl = by.get((control, "figure_after"))
    ctrl_ok = bool(ctrl) and (
        ctrl["lo"] <= 0 <= ctrl["hi"] or (loss is not None and abs(ctrl["mean"]) <= 0.1 * abs(loss["mean"]))
    )
    if ctrl is None:
        lines.append(f"**No control arm ({control}) in this sweep: the harness is unchecked.**")
    elif not ctrl_ok:
        lines.append(f"**The control arm {control} is not near 0 ({_cell(ctrl)}): check the harness first.**")
    lost = _below(loss) or _below(trend)
    lines += [
        f"- phenomenon: {baseline}'s figure after the first change {_cell(loss)}; late minus early "
        f"{_cell(trend)}: " + ("it loses plasticity." if lost else "no loss of plasticity shown."),
        f"- control: {control}'s figure after the first change {_cell(ctrl)}: "
        + ("about 0, as it must be." if ctrl_ok else "NOT about 0."),
    ]
    if not lost:
        lines.append(f"- methods are not compared: {baseline} shows no loss to remedy here.")
        return "\n".join(lines)
    def separating(metric: str) -> str:
        """The arms whose paired difference from the baseline in ``metric`` has an interval excluding 0."""
        found = []
        for arm in arms:
            row = by.get((arm, f"{metric}_minus_{baseline}"))
            if arm not in (baseline, control) and row and (row["lo"] > 0 or row["hi"] < 0):
                found.append(f"{arm} {row['mean']:+.0f} [{row['lo']:+.0f}, {row['hi']:+.0f}]")
        return "; ".join(found) or "none"

    lines.append(
        f"- separate from {baseline} (figure after the change, paired by seed, interval excluding 0): "
        + separating("figure_after")
    )
    lines.append(
        f"- return after the change minus {baseline}'s (paired; an arm whose network or fresh agents differ, e.g. "
        "LayerNorm, is judged here too, since its figure is against its own fresh agent): "
        + separating("return_after")
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", type=path_arg)
    p.add_argument("--out", type=path_arg, help="output folder (default: <sweep_dir>/report)")
    p.add_argument("--baseline", default="ppo", help="arm the others are compared with, seed by seed (default ppo)")
    p.add_argument("--control", default="ppo-reset-all", help="the arm that must score about 0 (default ppo-reset-all)")
    args = p.parse_args(argv)
    args.out = args.out or args.sweep_dir / "report"
    return args


def check(args: argparse.Namespace) -> None:
    if not (args.sweep_dir / "sweep.json").is_file():
        raise UsageError(f"{args.sweep_dir} has no sweep.json")
    check_writable(args.out, "output directory")


def tables(arms: dict[str, list[dict]], baseline: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Summary rows (per arm and metric; paired differences from ``baseline``), per-regime rows and per-run rows."""
    base = {r["seed"]: per_seed_summary(r) for r in arms.get(baseline, [])}
    keys = ["regime_return", "fresh_return", "figure", *[m for m, _ in METRICS]]
    summary_rows, regime_rows, run_rows = [], [], []
    for arm, runs in arms.items():
        seeds = [per_seed_summary(r) for r in runs]
        for key in seeds[0]:
            mean, lo, hi, n = interval([s[key] for s in seeds])
            summary_rows.append({"arm": arm, "metric": key, "mean": mean, "lo": lo, "hi": hi, "seeds": n})
        if arm != baseline and base:
            for key in ("figure_after", "return_after", "return_regime0"):
                paired = [s[key] - base[r["seed"]][key] for r, s in zip(runs, seeds, strict=True) if r["seed"] in base]
                mean, lo, hi, n = interval(paired)
                metric = f"{key}_minus_{baseline}"
                summary_rows.append({"arm": arm, "metric": metric, "mean": mean, "lo": lo, "hi": hi, "seeds": n})
        for r in runs:
            for k, row in enumerate(r["rows"]):
                run_rows.append({"arm": arm, "seed": r["seed"], "regime": k, **{key: row.get(key) for key in keys}})
        for k in range(min(len(r["rows"]) for r in runs)):
            row = {"arm": arm, "regime": k}
            for key in keys:
                mean, lo, hi, n = interval([r["rows"][k].get(key) for r in runs])
                row.update({key: mean, f"{key}_lo": lo, f"{key}_hi": hi})
            row["seeds"] = len(runs)
            regime_rows.append(row)
    return summary_rows, regime_rows, run_rows


def write_csv(path: Path, rows: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()})
    atomic_write_text(path, text.getvalue())


def markdown_table(by: dict[tuple[str, str], dict], arms: list[str], baseline: str, paired: bool) -> str:
    keys = ["return_regime0", "figure_regime0", "figure_after", "drop", "figure_last", "recovery", "late_minus_early"]
    keys += [f"figure_after_minus_{baseline}", "return_after", f"return_after_minus_{baseline}"] if paired else []
    table = ["| arm | seeds | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for arm in arms:
        cells = []
        for key in keys:
            r = by.get((arm, key))
            cells.append(f"{r['mean']:.0f} [{r['lo']:.0f}, {r['hi']:.0f}]" if r and not math.isnan(r["mean"]) else "")
        table.append(f"| {arm} | {by[(arm, 'drop')]['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(table)


def plot(regime_rows: list[dict], arms: list[str], title: str, out: Path) -> None:
    """Regime return (with the fresh agents'), plasticity figure and the four metrics per regime, one line per arm."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = [("regime_return", "regime return"), ("figure", "plasticity figure (continuing - fresh)"), *METRICS]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, (key, name) in zip(axes.flat, panels):
        for i, arm in enumerate(arms):
            rows = [r for r in regime_rows if r["arm"] == arm]
            x = [r["regime"] for r in rows]
            color, style = f"C{i % 10}", ("-", "--", ":")[i // 10 % 3]  # 10 colours, then other line styles
            ax.plot(x, [r[key] for r in rows], style, marker="o", ms=3, color=color, label=f"{arm} ({rows[0]['seeds']})")
            ax.fill_between(x, [r[f"{key}_lo"] for r in rows], [r[f"{key}_hi"] for r in rows], color=color, alpha=0.15)
            if key == "regime_return" and i == 0:
                ax.plot(x, [r["fresh_return"] for r in rows], "k--", lw=1, label="fresh plain PPO")
        if key == "figure":
            ax.axhline(0, color="k", lw=0.5)
        ax.set_title(name)
        ax.set_xlabel("regime")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{title}: mean and 95% interval over seeds (seeds per arm in brackets)")
    fig.tight_layout()
    partial = out / ".figure.png.partial"
    fig.savefig(partial, dpi=110, format="png")
    partial.replace(out / "figure.png")


def run(args: argparse.Namespace) -> int:
    arms = load_plasticity_sweep(args.sweep_dir)
    if not arms:
        raise UsageError(f"no finished run in {args.sweep_dir}")
    args.out.mkdir(parents=True, exist_ok=True)
    summary_rows, regime_rows, run_rows = tables(arms, args.baseline)
    for name, rows in [("table.csv", summary_rows), ("regimes.csv", regime_rows), ("runs.csv", run_rows)]:
        write_csv(args.out / name, rows)
    by = {(r["arm"], r["metric"]): r for r in summary_rows}
    table = markdown_table(by, list(arms), args.baseline, args.baseline in arms)
    print(table)
    atomic_write_text(args.out / "table.md", table + "\n")
    atomic_write_text(args.out / "summary.md", checks(by, list(arms), args.baseline, args.control) + "\n")
    plot(regime_rows, list(arms), args.sweep_dir.name, args.out)
    print(f"wrote table.csv, table.md, summary.md, regimes.csv, runs.csv and figure.png in {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(sys.modules[__name__], argv)  # type: ignore[arg-type]
