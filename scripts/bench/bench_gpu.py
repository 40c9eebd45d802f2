"""GPU benchmarks of the supervised pipeline and of the optimizer step, each side by side with its baseline.

  epoch        permuted-MNIST epoch (60,000 images, batch 64, the 4x300 FCN, Adam), the pipeline's eager step
               vs the same step captured as a CUDA graph (``train(step="graph")``)
  seeds        10 and 100 seeds stacked in one graphed model vs that many eager single-seed runs one after
               another (the eager run's time times the number of seeds)
  optimizer    fused AdamW on an 84M-weight MLP, alone vs with syre (coupled, decoupled, seed storage)

Every figure is the best of ``--repeats`` timed runs after a warm-up run, with the device synchronised around
each. Targets are the project's (see ``TARGETS``); they are judged on CUDA only.

    python scripts/bench/bench_gpu.py --json bench.json              # a CUDA machine
    python scripts/bench/bench_gpu.py --dry-run                      # small sizes on CPU: checks the code path
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from syre_rl.bench import best_time, sync
from syre_rl.core import Syre
from syre_rl.supervised.config import Experiment, Stage
from syre_rl.supervised.data import DataError, default_data_dir
from syre_rl.supervised.ensemble import member_generators
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.methods import attach_methods
from syre_rl.supervised.models import MLP
from syre_rl.supervised.step import GraphedStep, eager_step, make_optimizer

# Targets on one H100 (the measured anchors were 1.84 s naive and 0.28 s for one CUDA graph per epoch).
TARGETS = {
    "graphed_epoch_s": 0.2,  # at most
    "speedup_10_seeds": 40.0,  # at least, stacked vs one eager run after another
    "speedup_100_seeds": 85.0,  # at least
    "syre_over_fused_adamw": 1.15,  # at most, every syre variant with stored anchors
}


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is: the full sizes on a GPU, small ones for a dry run on CPU."""

    train_size: int = 60000
    members: tuple[int, ...] = (10, 100)
    mlp_width: int = 4096  # 5 layers of 4096 x 4096: 84M weights
    mlp_layers: int = 5
    repeats: int = 3
    optimizer_steps: int = 20


FULL = Sizes()
DRY = Sizes(train_size=640, members=(2, 3), mlp_width=256, mlp_layers=3, repeats=1, optimizer_steps=3)




# ---------------------------------------------------------------------------------------- pipeline
def epoch_runner(
    base: Experiment, sizes: Sizes, seeds: int, step: str, methods: list[str]
) -> Callable[[], None]:
    """One permuted-MNIST epoch (task 1: permuted pixels) of the pipeline's model, optimizer and methods, with
    the eager or the graphed step; each call trains one more epoch. ``base`` lends its data on the device (loaded
    once); the model is built as the experiment builds it, for ``seeds`` members."""
    device = base.device
    cfg = dataclasses.replace(base.cfg, methods=methods, seeds=seeds)
    experiment = copy.copy(base)
    experiment.cfg, experiment.members = cfg, cfg.members()
    experiment.model = MLP(784, cfg.hidden, 10, member_generators(experiment.seeds)).to(device)
    optimizer = make_optimizer(experiment.model, cfg, capturable=step == "graph" and device.type == "cuda")
    attach_methods(
        experiment.model,
        optimizer,
        experiment.members,
        decay_mode=cfg.decay_mode,
        include=experiment.decay_include,
        method_kwargs=cfg.method_kwargs,
    )
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda")
    counter = iter(range(1, 10**9))

    def epoch() -> None:
        stage = Stage(next(counter), 1, 0)
        total = torch.zeros(len(experiment.members), device=device)
        if step == "graph":
            run: Callable[[torch.Tensor], None] = GraphedStep(experiment, optimizer, stage, autocast, total)
        else:
            run = functools.partial(eager_step, experiment, optimizer, stage, autocast, total)
        for batch in experiment.batches(stage):
            run(batch)

    return epoch


def bench_pipeline(device: torch.device, data_dir: Path, sizes: Sizes) -> dict[str, Any]:
    experiment_cls = EXPERIMENTS["permuted-mnist"]
    cfg = experiment_cls.schema(
        methods=["none"],
        tasks=2,
        train_size=sizes.train_size,
        test_size=1000,
        batch_size=64,
        lr=1e-3,
        weight_decay=[1e-3],
        sigma0=[0.1],
        hidden=[300, 300, 300, 300],
    )
    torch.manual_seed(0)
    base = experiment_cls(cfg, device, data_dir, False)

    def timed(seeds: int, step: str, methods: list[str]) -> float:
        return best_time(epoch_runner(base, sizes, seeds, step, methods), device, sizes.repeats)

    naive = timed(1, "eager", ["none"])
    graphed = timed(1, "graph", ["none"])
    out: dict[str, Any] = {
        "examples": sizes.train_size,
        "batch_size": 64,
        "epoch": {
            "eager_s": naive,
            "graph_s": graphed,
            "speedup": naive / graphed,
            "syre_eager_s": timed(1, "eager", ["syre"]),
            "syre_graph_s": timed(1, "graph", ["syre"]),
        },
        "seeds": [],
    }
    for members in sizes.members:
        stacked = timed(members, "graph", ["none"])
        out["seeds"].append(
            {
                "members": members,
                "stacked_graph_s": stacked,
                "sequential_eager_s": members * naive,
                "speedup": members * naive / stacked,
            }
        )
    return out


# --------------------------------------------------------------------------------------- optimizer
def _mlp(width: int, layers: int, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(width, width) for _ in range(layers)]).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen, device=device) * 1e-3
    return model


def bench_optimizer(device: torch.device, sizes: Sizes) -> dict[str, Any]:
    """Fused AdamW alone vs with syre attached, interleaved round by round, best round of each."""
    variants: dict[str, dict[str, str] | None] = {
        "fused AdamW": None,
        "syre coupled": {"mode": "coupled", "anchor_storage": "tensor"},
        "syre decoupled": {"mode": "decoupled", "anchor_storage": "tensor"},
        "syre coupled, seed storage": {"mode": "coupled", "anchor_storage": "seed"},
    }
    steps: dict[str, Callable[[], None]] = {}
    weights = 0
    for name, options in variants.items():
        model = _mlp(sizes.mlp_width, sizes.mlp_layers, device)
        weights = sum(p.numel() for p in model.parameters())
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, fused=True)
        if options is not None:
            Syre(model, gamma=1e-3, seed=0, **options).attach(optimizer)
        optimizer.step()
        steps[name] = optimizer.step
    best = dict.fromkeys(steps, float("inf"))
    for _ in range(max(3, sizes.repeats * 3)):
        for name, step in steps.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(sizes.optimizer_steps):
                step()
            sync(device)
            best[name] = min(best[name], (time.perf_counter() - start) / sizes.optimizer_steps)
    base = best["fused AdamW"]
    return {
        "weights": weights,
        "rows": [{"variant": n, "ms": t * 1e3, "ratio": t / base} for n, t in best.items()],
    }


# ------------------------------------------------------------------------------------------- report
def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def judge(report: dict[str, Any]) -> dict[str, Any]:
    """Each target with its measured value and whether it is met (``None`` off CUDA)."""
    on_cuda = report["info"]["device"].startswith("cuda")
    pipeline, optimizer = report["pipeline"], report["optimizer"]
    measured = {
        "graphed_epoch_s": pipeline["epoch"]["graph_s"],
        "syre_over_fused_adamw": max(
            r["ratio"] for r in optimizer["rows"] if r["variant"] in ("syre coupled", "syre decoupled")
        ),
    }
    for row in pipeline["seeds"]:
        measured[f"speedup_{row['members']}_seeds"] = row["speedup"]
    verdicts = {}
    for key, target in TARGETS.items():
        value = measured.get(key)
        at_most = key in ("graphed_epoch_s", "syre_over_fused_adamw")
        met = None if value is None or not on_cuda else (value <= target if at_most else value >= target)
        verdicts[key] = {"target": target, "at_most": at_most, "measured": value, "met": met}
    return verdicts


def run(device: torch.device, data_dir: Path, sizes: Sizes, log: Callable[[str], None] = print) -> dict:
    """All GPU benchmarks on ``device``; returns the report (``info``, ``pipeline``, ``optimizer``, ``targets``)."""
    report: dict[str, Any] = {
        "info": device_info(device),
        "sizes": sizes.__dict__ | {"members": list(sizes.members)},
    }
    log("benchmark: permuted-MNIST epoch, eager vs graphed, stacked seeds")
    report["pipeline"] = bench_pipeline(device, data_dir, sizes)
    log("benchmark: optimizer step, fused AdamW vs syre")
    report["optimizer"] = bench_optimizer(device, sizes)
    report["targets"] = judge(report)
    return report


def summary(report: dict[str, Any]) -> list[str]:
    """The report as short lines of text, ratios side by side."""
    info, pipeline, optimizer = report["info"], report["pipeline"], report["optimizer"]
    epoch = pipeline["epoch"]
    lines = [
        f"device {info.get('gpu', info['device'])}, torch {info['torch']}",
        f"permuted-MNIST epoch ({pipeline['examples']} images, batch 64, 4x300 FCN, Adam):",
        f"  eager {epoch['eager_s']:.3f} s | graphed {epoch['graph_s']:.3f} s | speed-up {epoch['speedup']:.2f}x",
        f"  with syre: eager {epoch['syre_eager_s']:.3f} s | graphed {epoch['syre_graph_s']:.3f} s",
    ]
    for row in pipeline["seeds"]:
        lines.append(
            f"  {row['members']} seeds: stacked+graphed {row['stacked_graph_s']:.3f} s | {row['members']} eager runs "
            f"{row['sequential_eager_s']:.3f} s | speed-up {row['speedup']:.1f}x"
        )
    lines.append(f"optimizer step, {optimizer['weights'] / 1e6:.1f}M weights:")
    for row in optimizer["rows"]:
        lines.append(f"  {row['variant']:28s} {row['ms']:8.3f} ms  {row['ratio']:.3f}x")
    lines.append("targets:")
    for key, v in report["targets"].items():
        sign = "<=" if v["at_most"] else ">="
        verdict = {True: "met", False: "NOT met", None: "not judged (no CUDA)"}[v["met"]]
        value = "n/a" if v["measured"] is None else f"{v['measured']:.3f}"
        lines.append(f"  {key:24s} {value:>9s} (target {sign} {v['target']}): {verdict}")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=default_data_dir(), help="folder holding MNIST/raw/")
    p.add_argument("--dry-run", action="store_true", help="small sizes on CPU (checks the code path only)")
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = p.parse_args()
    if args.dry_run:
        device, sizes = torch.device("cpu"), DRY
    elif torch.cuda.is_available():
        device, sizes = torch.device("cuda"), FULL
    else:
        print("error: no CUDA device (use --dry-run for a small run on CPU)", file=sys.stderr)
        return 3
    try:
        report = run(device, args.data_dir, sizes)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(summary(report)))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
