"""Time ``optimizer.step()`` with and without syre, side by side in one run, and report the anchors' memory.

Each case interleaves the plain and the syre step (``--repeats`` rounds of ``--steps`` steps each) and reports
the ratio of the fastest rounds: interleaving cancels drift in the machine's speed, and the minimum is the round
least disturbed by other processes. syre's hook is also timed alone (``hook/plain``: its cost as a share of the plain
step, free of the noise that the difference of two full steps carries). Run: ``python scripts/bench/bench_core.py``.

On a machine shared with other work, ``--clock cpu --threads 1`` times each round by the CPU time the process
spent (``time.process_time``), which waiting for a core does not inflate; memory traffic of other processes still
does. The 10M-weight model also gets the coupled step without cache blocking (``unblocked``), the form before
``syre_rl.core.BLOCK_ELEMENTS`` existed, side by side.
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

import syre_rl.core as core
from syre_rl.core import Syre

CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


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


def timed_steps(
    opt: torch.optim.Optimizer, steps: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    start = clock()
    for _ in range(steps):
        opt.step()
    return (clock() - start) / steps


def timed_hook(syre: Syre, opt: torch.optim.Optimizer, steps: int, clock: Callable[[], float]) -> float:
    """syre's part of a step alone (its pre-step hook): what the syre step adds, without the noise of a second
    optimizer step in the difference."""
    start = clock()
    for _ in range(steps):
        syre._pre_step(opt, (), {})
    return (clock() - start) / steps


def with_grads(model: nn.Module) -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    return model


def bench_case(
    model_name: str,
    opt_name: str,
    mode: str,
    storage: str,
    steps: int,
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
    blocked: bool = True,
) -> dict:
    torch.manual_seed(0)
    plain_model = with_grads(MODELS[model_name]())
    syre_model = with_grads(MODELS[model_name]())
    plain_opt = make_optimizer(opt_name, plain_model)
    syre = Syre(syre_model, gamma=1e-3, sigma0=0.01, mode=mode, anchor_storage=storage, seed=0)
    syre_opt = syre.attach(make_optimizer(opt_name, syre_model))
    block = core.BLOCK_ELEMENTS
    core.BLOCK_ELEMENTS = block if blocked else 1 << 62  # the block plan is made at the first step
    try:
        timed_steps(plain_opt, 2), timed_steps(syre_opt, 2)  # warm-up: optimizer state allocation
    finally:
        core.BLOCK_ELEMENTS = block
    plain, ours, hook = [], [], []
    for _ in range(repeats):
        plain.append(timed_steps(plain_opt, steps, clock))
        ours.append(timed_steps(syre_opt, steps, clock))
        hook.append(timed_hook(syre, syre_opt, steps, clock))
    plain_ms, ours_ms, hook_ms = min(plain) * 1e3, min(ours) * 1e3, min(hook) * 1e3
    anchor_bytes = sum(b.numel() * b.element_size() for b in syre.buffers())
    param_bytes = sum(p.numel() * p.element_size() for p in syre_model.parameters())
    return {
        "model": model_name,
        "optimizer": opt_name,
        "mode": mode,
        "storage": storage if blocked else f"{storage}, unblocked",
        "plain_ms": plain_ms,
        "syre_ms": ours_ms,
        "overhead": ours_ms / plain_ms - 1,
        "hook_ms": hook_ms,
        "hook_share": hook_ms / plain_ms,
        "anchor_mib": anchor_bytes / 2**20,
        "anchor_share": anchor_bytes / param_bytes,
    }


def steady_allocator() -> str:
    """glibc returns freed blocks above its mmap threshold to the kernel, and a step's temporaries (foreach Adam's
    square roots, 42 MB for 10M weights) are then faulted in again, zero-filled, on some steps and not others,
    depending on the allocator's history: the plain step's time jumped between 27 and 49 ms from one case to the
    next. Fixing the thresholds gives every step the steady state of a long run: temporaries reuse heap memory."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 1 << 30)
    except OSError:
        ok = False
    return "glibc malloc: mmap threshold 32 MiB, trim threshold 1 GiB" if ok else "allocator: default"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per timed round")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds per case")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--clock", choices=list(CLOCKS), default="wall", help="wall time, or the process's CPU time"
    )
    parser.add_argument(
        "--allocator",
        choices=["steady", "default"],
        default="steady",
        help="steady: no returning of freed temporaries to the kernel between steps (see steady_allocator)",
    )
    parser.add_argument(
        "--cases",
        choices=["all", "tensor"],
        default="all",
        help="tensor: stored anchors only (no seed storage)",
    )
    args = parser.parse_args()
    if args.steps < 1 or args.repeats < 1 or (args.threads is not None and args.threads < 1):
        print("error: --steps, --repeats and --threads must be positive", file=sys.stderr)
        sys.exit(2)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]
    allocator = steady_allocator() if args.allocator == "steady" else "allocator: default"

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, {args.clock} clock, best of {args.repeats} rounds of {args.steps} steps, {allocator}"
    )
    print(
        f"{'model':<20}{'optim':<7}{'mode':<11}{'anchors':<19}{'plain ms':>10}{'syre ms':>10}{'overhead':>10}"
        f"{'hook ms':>9}{'hook/plain':>11}{'anchor MiB':>12}"
    )
    for model_name in args.models:
        for opt_name, mode in [
            ("Adam", "coupled"),
            ("AdamW", "decoupled"),
            ("Adam", "decoupled"),
            ("AdamW", "coupled"),
        ]:
            variants = [("tensor", True)]
            if mode == "coupled" and opt_name == "Adam" and model_name == "mlp-10M":
                variants.append(("tensor", False))
            if args.cases == "all":
                variants.append(("seed", True))
            for storage, blocked in variants:
                r = bench_case(model_name, opt_name, mode, storage, args.steps, args.repeats, clock, blocked)
                print(
                    f"{r['model']:<20}{r['optimizer']:<7}{r['mode']:<11}{r['storage']:<19}{r['plain_ms']:>10.3f}"
                    f"{r['syre_ms']:>10.3f}{r['overhead']:>+10.1%}{r['hook_ms']:>9.3f}"
                    f"{r['hook_share']:>+11.1%}{r['anchor_mib']:>12.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
