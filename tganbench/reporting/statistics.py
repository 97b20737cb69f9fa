"""Statistics over seeds: a 95% Student-t interval for a mean, and a paired difference to a baseline.

Both come from scipy.stats. The seeds fix the shots, the initialisation, the
training and the evaluation noise, so a difference between two strategies on
the same seeds is paired: the pairing removes their shared variance.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def mean_interval(values: Any) -> tuple[float, float, float, float]:
    """``(mean, std, low, high)`` of ``values``: the 95% t-interval of the mean (NaN bounds below 2 values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return (math.nan,) * 4
    mean = float(values.mean())
    if len(values) == 1:
        return mean, math.nan, math.nan, math.nan
    std = float(values.std(ddof=1))
    if np.ptp(values) == 0:  # identical values: the interval is the point (scipy warns instead)
        return mean, std, mean, mean
    interval = stats.ttest_1samp(values, 0.0).confidence_interval(CONFIDENCE)
    return mean, std, float(interval.low), float(interval.high)


def paired_difference(values: Any, baseline: Any) -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``values - baseline`` over pairs where both are finite (paired t-interval)."""
    values, baseline = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    both = np.isfinite(values) & np.isfinite(baseline)
    values, baseline = values[both], baseline[both]
    if len(values) == 0:
        return (math.nan,) * 3
    differences = values - baseline
    mean = float(differences.mean())
    if len(values) == 1:
        return mean, math.nan, math.nan
    if np.ptp(differences) == 0:
        return mean, mean, mean
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.ttest_rel(values, baseline).confidence_interval(CONFIDENCE)
    return mean, float(interval.low), float(interval.high)
