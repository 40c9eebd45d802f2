"""Learning curves of runs: read TensorBoard scalars and bin them by steps.

A curve of one run is the mean of its logged values inside each bin of steps (empty bins are NaN). The mean and
bootstrap band over the seeds of a method are :func:`syre_rl.stats.bootstrap_band`'s.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np

__all__ = ["bin_means", "read_scalars", "regime_changes", "select_tags"]


def read_scalars(tb_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar tag of the event files in ``tb_dir`` as ``(steps, values)``, sorted by step.

    A resumed run repeats the steps between its checkpoint and the interruption; the later write wins, like
    TensorBoard shows it.
    """
    from tensorboard.backend.event_processing.event_accumulator import (  # noqa: PLC0415  (heavy)
        EventAccumulator,
    )

    accumulator = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})  # 0: keep every point
    accumulator.Reload()
    out = {}
    for tag in accumulator.Tags()["scalars"]:
        by_step = {event.step: event.value for event in accumulator.Scalars(tag)}
        steps = np.array(sorted(by_step), dtype=np.int64)
        out[tag] = (steps, np.array([by_step[s] for s in steps], dtype=np.float64))
    return out


def select_tags(pattern: str, tags: list[str] | set[str]) -> list[str]:
    """Tags matching ``pattern`` (fnmatch globs: ``plasticity/actor/weight_magnitude/*``), sorted."""
    return sorted(t for t in tags if fnmatch.fnmatchcase(t, pattern))


def bin_means(steps: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``values`` whose step falls in ``[edges[i], edges[i+1])``, NaN where none does."""
    index = np.searchsorted(edges, steps, side="right") - 1
    inside = (index >= 0) & (index < len(edges) - 1)
    sums = np.bincount(index[inside], weights=values[inside], minlength=len(edges) - 1)
    counts = np.bincount(index[inside], minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def regime_changes(steps: np.ndarray, regime_index: np.ndarray) -> list[int]:
    """Steps at which a logged regime index differs from the previous point (the new regime's first point)."""
    if len(steps) < 2:
        return []
    changed = np.flatnonzero(np.diff(regime_index) != 0) + 1
    return [int(steps[i]) for i in changed]
