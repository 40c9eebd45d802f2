"""Which part of an agent lost plasticity: counterfactual resets from a checkpoint at a regime change.

"The agent stopped learning" becomes "this part of it did". From a continuing run's checkpoint taken as one
regime ended (``scripts/rl_plasticity.py`` saves one at every change), the agent continues ``steps`` steps on the
next regime once per *counterfactual*, each time with one part replaced by a fresh network's (and that part's
optimizer state dropped, as a new network would start it):

    as-is         nothing reset
    head          the actor's output layer (``action_net``)
    log_std       the state-independent exploration noise (continuous actions only)
    head+log_std  both
    actor-hidden  the actor's hidden layers
    critic        the critic's hidden layers and its output layer
    optimizer     Adam's moments and step counts of every tensor (weights kept)
    all           every tensor and the optimizer state (a fresh network on the continuing agent's method state)

and a fresh agent learns the same steps beside them. Each is repeated with several seeds (seed ``j`` draws the
same fresh network for every counterfactual and for the fresh agent, and the same rollout randomness), and scored
by the mean return of the episodes ending in the last ``tail`` of the steps. A counterfactual's *share of the gap
closed* is ``(score - as-is) / (fresh - as-is)``: near 1, resetting that part alone restores a fresh agent's
learning; near 0, the loss lies elsewhere. A benchmark's own ``change_reset`` (parts every arm resets at a change)
is applied in every counterfactual and in the as-is continuation, since the checkpoint precedes it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from torch import nn

from syre_rl import runs
from syre_rl.cli import CheckpointError, OneLineParser, UsageError, check_writable, path_arg, positive_int
from syre_rl.lifecycle import run_command
from syre_rl.methods.reinit import matching_parameters
from syre_rl.presets import build_preset
from syre_rl.rl.callbacks import EpisodeReturnsCallback
from syre_rl.rl.config import AgentPreset, PPOPreset
from syre_rl.rl.model import build_model, make_env
from syre_rl.rl.run_dir import RunDir, checkpoint_step, load_checkpoint
from syre_rl.stats import t_interval

__all__ = ["COUNTERFACTUALS", "Diagnosis", "diagnose", "reset_parts", "write_diagnosis"]

# Parts of an SB3 actor-critic policy, as glob patterns on its parameter names.
HEAD = ("action_net.*",)
LOG_STD = ("log_std",)
ACTOR_HIDDEN = ("mlp_extractor.policy_net.*", "pi_features_extractor.*")
CRITIC = ("mlp_extractor.value_net.*", "vf_features_extractor.*", "value_net.*")

# Counterfactual -> (parameter patterns reset from a fresh network, whether the whole optimizer state is dropped).
COUNTERFACTUALS: dict[str, tuple[tuple[str, ...], bool]] = {
    "as-is": ((), False),
    "head": (HEAD, False),
    "log_std": (LOG_STD, False),
    "head+log_std": (HEAD + LOG_STD, False),
    "actor-hidden": (ACTOR_HIDDEN, False),
    "critic": (CRITIC, False),
    "optimizer": ((), True),
    "all": (("*",), True),
}
FRESH = "fresh"
# Preset fields that only describe a run (their names changed across versions): not read back.
REPORTING = ("description", "reference", "reference_return", "reference_returns")
DIAGNOSIS_SEED = 1000  # diagnosis seed j uses 1000 + j: apart from the runs' own seeds


def reset_parts(
    model: BaseAlgorithm, donor: nn.Module, patterns: Sequence[str], optimizer: bool
) -> list[str]:
    """Copy the parameters of ``model.policy`` that match ``patterns`` from ``donor`` (a fresh policy of the same
    settings) and drop their optimizer state; with ``optimizer``, drop the whole optimizer state. Returns the
    names reset."""
    policy, fresh = model.policy, dict(donor.named_parameters())
    names = []
    for name, param in matching_parameters(policy, patterns) if patterns else []:
        if name in fresh:
            param.data.copy_(fresh[name].data)
            policy.optimizer.state.pop(param, None)
            names.append(name)
    if optimizer:
        policy.optimizer.state.clear()
    return names


@dataclass
class Diagnosis:
    """What :func:`diagnose` measured: ``scores[counterfactual][j]`` for diagnosis seed ``j`` (``fresh`` too)."""

    run_dir: str
    checkpoint: str
    start_step: int
    regime: int
    steps: int
    tail: float
    seeds: list[int]
    reset: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> list[dict[str, Any]]:
        """Per counterfactual: score, score minus fresh (paired by seed) and share of the gap closed."""
        fresh, as_is = self.scores[FRESH], self.scores["as-is"]
        gap = _mean([f - a for f, a in zip(fresh, as_is, strict=True)])
        rows = []
        for name, scores in self.scores.items():
            mean, lo, hi, n = t_interval(scores)
            d_mean, d_lo, d_hi, _ = t_interval([s - f for s, f in zip(scores, fresh, strict=True)])
            closed = (mean - _mean(as_is)) / gap if gap and math.isfinite(gap) else math.nan
            rows.append(
                {
                    "counterfactual": name,
                    "seeds": n,
                    "score": mean,
                    "score_lo": lo,
                    "score_hi": hi,
                    "minus_fresh": d_mean,
                    "minus_fresh_lo": d_lo,
                    "minus_fresh_hi": d_hi,
                    "gap_closed": closed,
                    "reset": ", ".join(self.reset.get(name, []))
                    or ("optimizer state" if name == "optimizer" else ""),
                }
            )
        return rows

    def restoring(self, share: float = 0.5) -> list[str]:
        """The counterfactuals (of one part, not ``all``) that close at least ``share`` of the gap."""
        return [
            r["counterfactual"]
            for r in self.summary()
            if r["counterfactual"] not in (FRESH, "as-is", "all") and r["gap_closed"] >= share
        ]


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def diagnose(
    run_dir: Path,
    step: int | None = None,
    steps: int | None = None,
    seeds: int = 3,
    counterfactuals: Sequence[str] | None = None,
    tail: float = 0.25,
    log: Callable[[str], None] = print,
) -> Diagnosis:
    """Run every counterfactual from the run's first checkpoint at or after ``step`` (see the module docstring).

    :param run_dir: a finished run of ``scripts/rl_plasticity.py`` (``results.json`` and ``checkpoints/``)
    :param step: run step; the checkpoint taken first at or after it is used (default: the first checkpoint)
    :param steps: steps each continuation learns (default: the rest of the regime the checkpoint starts)
    :param seeds: diagnosis seeds per counterfactual
    :param counterfactuals: names of :data:`COUNTERFACTUALS` (default all; the fresh agent always runs)
    :param tail: fraction of ``steps`` whose episodes score
    :raises CheckpointError: a missing or unreadable run, checkpoint or setting
    """
    names = list(counterfactuals or COUNTERFACTUALS)
    unknown = [n for n in names if n not in COUNTERFACTUALS]
    if unknown:
        raise UsageError(f"unknown counterfactual {unknown[0]!r}; choose from {', '.join(COUNTERFACTUALS)}")
    if seeds < 1 or not 0 < tail <= 1:
        raise UsageError(f"need seeds >= 1 and 0 < tail <= 1, got {seeds} and {tail}")
    preset, seed, change_every = _run_settings(run_dir)
    found = [c for c in RunDir(run_dir).checkpoints() if step is None or checkpoint_step(c) >= step]
    if not found:
        raise CheckpointError(f"{run_dir} has no checkpoint at or after step {step or 0:,}")
    checkpoint = found[0]
    start = checkpoint_step(checkpoint)
    regime = start // change_every
    left = (regime + 1) * change_every - start
    steps = steps or left
    if not 0 < steps <= left:
        raise UsageError(f"--steps must be in 1..{left:,} (the rest of regime {regime} after step {start:,})")

    probe_env = make_env(preset, n_envs=preset.n_envs, seed=seed)
    names = _distinct(load_checkpoint(PPO, checkpoint, probe_env, device="cpu"), names)
    probe_env.close()
    diag_seeds = [DIAGNOSIS_SEED + j for j in range(seeds)]
    result = Diagnosis(str(run_dir), str(checkpoint), start, regime, steps, tail, diag_seeds)
    for name in [FRESH, *names]:
        result.scores[name] = []
    for j, diag_seed in enumerate(result.seeds):
        for name in [FRESH, *names]:
            env = make_env(preset, n_envs=preset.n_envs, seed=seed, start_step=start)
            fresh = build_model("ppo", preset, env, seed=diag_seed, device="cpu")
            if name == FRESH:
                model = fresh
            else:
                model = load_checkpoint(PPO, checkpoint, env, device="cpu")
                model.set_random_seed(diag_seed)
                patterns, optimizer = COUNTERFACTUALS[name]
                reset = reset_parts(
                    model, fresh.policy, tuple(patterns) + tuple(preset.change_reset), optimizer
                )
                result.reset[name] = sorted(set(reset) - set(_matching(model, preset.change_reset)))
            score = _learn(model, steps, tail)
            result.scores[name].append(score)
            env.close()
            log(f"seed {j + 1}/{seeds} {name}: {score:.1f}")
    return result


def _distinct(model: BaseAlgorithm, names: list[str]) -> list[str]:
    """The counterfactuals that reset something of ``model`` and not what an earlier one resets (with discrete
    actions there is no ``log_std``: ``log_std`` resets nothing and ``head+log_std`` is ``head``)."""
    seen: set[tuple[tuple[str, ...], bool]] = set()
    kept = []
    for name in names:
        patterns, optimizer = COUNTERFACTUALS[name]
        key = (tuple(_matching(model, patterns)), optimizer)
        if (patterns and not key[0]) or key in seen:
            continue
        seen.add(key)
        kept.append(name)
    return kept


def _matching(model: BaseAlgorithm, patterns: Sequence[str]) -> list[str]:
    return [name for name, _ in matching_parameters(model.policy, patterns)] if patterns else []


def _learn(model: BaseAlgorithm, steps: int, tail: float) -> float:
    returns = EpisodeReturnsCallback(offset=0)
    model.learn(steps, callback=returns, reset_num_timesteps=True)
    late = [r for s, _, r in returns.rows if s > (1 - tail) * steps]
    return sum(late) / len(late) if late else math.nan


def _run_settings(run_dir: Path) -> tuple[AgentPreset, int, int]:
    path = Path(run_dir) / "results.json"
    try:
        results = json.loads(path.read_text())
        fields = {k: v for k, v in results["preset"].items() if k not in REPORTING}
        preset = build_preset(PPOPreset, fields, str(path))
        return preset, int(results["seed"]), int(results["change_every"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"cannot read the run's settings from {path}: {err}") from None


def write_diagnosis(diagnosis: Diagnosis, out: Path) -> list[Path]:
    """Write ``diagnosis.json`` (settings and every score), ``diagnosis.csv`` and ``diagnosis.md`` (the summary
    table) and ``diagnosis.png`` (score minus fresh per counterfactual) into ``out``, each atomically."""
    import csv
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    rows = diagnosis.summary()
    written = [out / "diagnosis.json", out / "diagnosis.csv", out / "diagnosis.md", out / "diagnosis.png"]
    data = {**asdict(diagnosis), "summary": rows, "restoring": diagnosis.restoring()}
    runs.write_json(written[0], data)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in row.items()} for row in rows)
    runs.atomic_write_text(written[1], text.getvalue())
    lines = [
        f"Counterfactual resets from `{diagnosis.checkpoint}` (run step {diagnosis.start_step:,}, regime "
        f"{diagnosis.regime}): {diagnosis.steps:,} steps each, {len(diagnosis.seeds)} seeds, score = mean return of "
        f"the episodes in the last {diagnosis.tail:.0%}. Restores at least half of the gap to a fresh agent: "
        f"{', '.join(diagnosis.restoring()) or 'no single part'}.",
        "",
        "| counterfactual | seeds | score | minus fresh | gap closed | reset |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['counterfactual']} | {r['seeds']} | {r['score']:.1f} [{r['score_lo']:.1f}, {r['score_hi']:.1f}] | "
            f"{r['minus_fresh']:.1f} [{r['minus_fresh_lo']:.1f}, {r['minus_fresh_hi']:.1f}] | "
            f"{r['gap_closed']:.2f} | {r['reset']} |"
        )
    runs.atomic_write_text(written[2], "\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(8, 4))
    shown = [r for r in rows if r["counterfactual"] != FRESH]
    x = range(len(shown))
    means = [r["minus_fresh"] for r in shown]
    errors = [
        [m - r["minus_fresh_lo"] for m, r in zip(means, shown)],
        [r["minus_fresh_hi"] - m for m, r in zip(means, shown)],
    ]
    errors = [[0.0 if math.isnan(e) else e for e in side] for side in errors]
    ax.bar(
        x,
        means,
        yerr=errors,
        color=["C3" if r["counterfactual"] == "as-is" else "C0" for r in shown],
        capsize=3,
    )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(list(x), [r["counterfactual"] for r in shown], rotation=30, ha="right")
    ax.set_ylabel("score minus fresh agent's (95% interval)")
    ax.set_title(f"counterfactual resets at step {diagnosis.start_step:,} (regime {diagnosis.regime})")
    fig.tight_layout()
    partial = out / ".diagnosis.png.partial"
    fig.savefig(partial, dpi=110, format="png")
    plt.close(fig)
    partial.replace(written[3])
    return written


# ------------------------------------------------------------------------------------------ command line
PROG = "diagnose_plasticity.py"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=path_arg)
    p.add_argument("--step", type=int, default=None, help="use the first checkpoint at or after this run step")
    p.add_argument("--steps", type=positive_int, help="steps per continuation (default: rest of the regime)")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per counterfactual (default 3)")
    p.add_argument("--only", help=f"comma-separated counterfactuals (default all: {', '.join(COUNTERFACTUALS)})")
    p.add_argument("--out", type=path_arg, help="output folder (default: RUN-diagnosis)")
    args = p.parse_args(argv)
    args.out = args.out or args.run_dir.with_name(args.run_dir.name + "-diagnosis")
    return args


def check(args: argparse.Namespace) -> None:
    check_writable(args.out, "output directory")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)  # small networks: more threads only spin against each other
    only = args.only.split(",") if args.only else None
    result = diagnose(args.run_dir, args.step, args.steps, args.seeds, only)
    write_diagnosis(result, args.out)
    print(f"restores at least half the gap: {', '.join(result.restoring()) or 'no single part'}; wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(sys.modules[__name__], argv)  # type: ignore[arg-type]

