"""Statistics over seeds: a 95% Student-t interval for a mean, and a paired difference to a baseline.

Both come from scipy.stats. The seeds fix the shots, the initialisation, the
training and the evaluation noise, so a difference between two strategies on
the same seeds is paired: the pairing removes their shared variance.

A run with several source checkpoints repeats every from-source cell on each:
the cells nest within source checkpoints. The nested versions
(:func:`nested_mean_interval`, :func:`nested_paired_difference`) then take the
t-interval over the per-checkpoint means, which covers the variance between
checkpoints as well as between seeds (in a balanced nested design the standard
error of the grand mean is the std of the group means over the square root of
their number). With one checkpoint they are the plain versions.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
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


def group_means(values: Any, groups: Any) -> pd.Series:
    """The mean of the finite ``values`` within each group (one entry per group with a finite value)."""
    values = pd.Series(np.asarray(values, dtype=float))
    groups = pd.Series(np.asarray(groups))
    finite = np.isfinite(values.to_numpy())
    return values[finite].groupby(groups[finite].to_numpy(), sort=True).mean()


def nested_mean_interval(values: Any, groups: Any) -> tuple[float, float, float, float]:
    """``(mean, std, low, high)`` of ``values`` whose units nest within ``groups`` (source checkpoints).

    With two or more groups the mean is the mean of the group means and the
    95% interval is the t-interval over the group means; ``std`` stays the
    spread of the single values (what ``mean ± std`` shows). With one group
    this is :func:`mean_interval` of ``values``.
    """
    means = group_means(values, groups)
    if len(means) < 2:
        return mean_interval(values)
    mean, _, low, high = mean_interval(means)
    return mean, mean_interval(values)[1], low, high


def nested_paired_difference(values: Any, baseline: Any, groups: Any) -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``values - baseline``, pairs nested within ``groups`` (source checkpoints).

    Each pair is one cell and the baseline's cell of the same seed. With two or
    more groups holding a finite difference, the interval is the t-interval over
    the groups' mean differences; with one group this is :func:`paired_difference`.
    """
    values, baseline = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    means = group_means(values - baseline, groups)
    if len(means) < 2:
        return paired_difference(values, baseline)
    mean, _, low, high = mean_interval(means)
    return mean, low, high
