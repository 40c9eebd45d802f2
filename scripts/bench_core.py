"""Time ``optimizer.step()`` with and without syre, side by side in one run, and report the anchors' memory.

Each case interleaves the plain and the syre step (``--repeats`` rounds of ``--steps`` steps each) and reports
the ratio of the fastest rounds: interleaving cancels drift in the machine's speed, and the minimum is the round
least disturbed by other processes. Run: ``python scripts/bench_core.py``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from syre_rl.core import Syre


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


MODELS: dict[str, Callable[[], nn.Module]] = {
    # SB3's PPO MlpPolicy on Ant with net_arch pi/vf [256, 256]: two such towers (obs 28, action 8).
    "ppo-2x256 (0.15M)": lambda: nn.ModuleList([mlp([28, 256, 256, 8]), mlp([28, 256, 256, 1])]),
    "mlp-10M": lambda: mlp([1024, 2048, 2048, 2048, 1024]),
}


def make_optimizer(name: str, model: nn.Module) -> torch.optim.Optimizer:
    cls = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}[name]
    return cls(model.parameters(), lr=1e-4, weight_decay=0.0, foreach=True)


def timed_steps(opt: torch.optim.Optimizer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - start) / steps


def with_grads(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    return model


def bench_case(model_name: str, opt_name: str, mode: str, storage: str, steps: int, repeats: int) -> dict:
    torch.manual_seed(0)
    plain_model = with_grads(MODELS[model_name]())
    syre_model = with_grads(MODELS[model_name]())
    plain_opt = make_optimizer(opt_name, plain_model)
    syre = Syre(syre_model, gamma=1e-3, sigma0=0.01, mode=mode, anchor_storage=storage, seed=0)
    syre_opt = syre.attach(make_optimizer(opt_name, syre_model))
    timed_steps(plain_opt, 2), timed_steps(syre_opt, 2)  # warm-up: optimizer state allocation
    plain, ours = [], []
    for _ in range(repeats):
        plain.append(timed_steps(plain_opt, steps))
        ours.append(timed_steps(syre_opt, steps))
    plain_ms, ours_ms = min(plain) * 1e3, min(ours) * 1e3
    anchor_bytes = sum(b.numel() * b.element_size() for b in syre.buffers())
    param_bytes = sum(p.numel() * p.element_size() for p in syre_model.parameters())
    return {
        "model": model_name,
        "optimizer": opt_name,
        "mode": mode,
        "storage": storage,
        "plain_ms": plain_ms,
        "syre_ms": ours_ms,
        "overhead": ours_ms / plain_ms - 1,
        "anchor_mib": anchor_bytes / 2**20,
        "anchor_share": anchor_bytes / param_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per timed round")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds per case")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    if args.steps < 1 or args.repeats < 1:
        sys.exit("bench_core.py: --steps and --repeats must be positive")

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"{'model':<20}{'optim':<7}{'mode':<11}{'anchors':<8}{'plain ms':>10}{'syre ms':>10}{'overhead':>10}"
        f"{'anchor MiB':>12}"
    )
    for model_name in args.models:
        for opt_name, mode in [
            ("Adam", "coupled"),
            ("AdamW", "decoupled"),
            ("Adam", "decoupled"),
            ("AdamW", "coupled"),
        ]:
            for storage in ("tensor", "seed"):
                r = bench_case(model_name, opt_name, mode, storage, args.steps, args.repeats)
                print(
                    f"{r['model']:<20}{r['optimizer']:<7}{r['mode']:<11}{r['storage']:<8}{r['plain_ms']:>10.3f}"
                    f"{r['syre_ms']:>10.3f}{r['overhead']:>+10.1%}{r['anchor_mib']:>12.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
