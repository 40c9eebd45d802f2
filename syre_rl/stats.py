"""Intervals over seeds, the one definition every report uses: the mean and a two-sided 95% Student-t interval."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["T95", "t_interval"]

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
