"""Statistics over seeds, the one definition every report uses (RL, supervised, sweeps): the mean with a
two-sided 95% Student-t interval, and the mean with a percentile bootstrap band per step or stage."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["T95", "bootstrap_band", "nan_mean", "t_interval"]

# Two-sided 95% quantiles of Student's t by degrees of freedom (1..30); beyond that, the normal's 1.96.
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]  # fmt: skip


def t_interval(values: Iterable[float | None]) -> tuple[float, float, float, int]:
    """Mean and 95% t-interval over seeds (None and NaN dropped): ``(mean, lo, hi, n)``; NaN bounds below 2."""
    x = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan, 0
    if x.size == 1:
        return float(x[0]), math.nan, math.nan, 1
    half = (T95[x.size - 2] if x.size - 2 < len(T95) else 1.96) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half), int(x.size)


def nan_mean(stack: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN (without a warning) where every value is NaN."""
    n = (~np.isnan(stack)).sum(axis)
    return np.where(n > 0, np.nansum(stack, axis) / np.maximum(n, 1), np.nan)


def bootstrap_band(
    curves: np.ndarray, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and a percentile bootstrap interval of it, per bin: ``(mean, lo, hi, n_seeds)``.

    :param curves: ``[seeds, bins]``, NaN where a seed has no value (it then counts in no resample)
    """
    curves = np.asarray(curves, dtype=np.float64)
    present = ~np.isnan(curves)
    n = present.sum(0)
    mean = nan_mean(curves)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, curves.shape[0], size=(resamples, curves.shape[0]))
    sample = curves[picks]  # [resamples, seeds, bins]
    means = nan_mean(sample, axis=1)  # NaN where a resample drew no value
    tail = (1 - confidence) / 2 * 100
    lo = np.full(curves.shape[1], np.nan)
    hi = np.full(curves.shape[1], np.nan)
    for b in np.flatnonzero(n > 0):
        drawn = means[:, b][~np.isnan(means[:, b])]
        lo[b], hi[b] = np.percentile(drawn, [tail, 100 - tail])
    return mean, lo, hi, n
