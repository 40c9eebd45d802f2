"""Timing for the benchmark scripts: the best of several wall-clock runs, with the device synchronised."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["best_time", "sync"]


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Best of ``repeats`` wall-clock times of ``fn`` after one warm-up call: the least disturbed run."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best
