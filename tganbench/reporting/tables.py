"""The summary table: cells aggregated over seeds, with intervals, paired differences and time to quality.

One row per (shots, strategy). The columns follow the metrics the results
folder records: the *primary* metric (the one whose best value is kept, FD
today) gets its final value with a 95% interval, the paired difference to
``scratch``, its best value and step, and time to quality; every other metric
gets its headline as mean ± std. ``summary.md`` shows the full table;
:func:`compact_table` is the one a terminal shows (it fits 120 columns).
"""

from __future__ import annotations

import math
import textwrap
from typing import Any, Sequence

import pandas as pd
from tabulate import tabulate

from tganbench.reporting.statistics import CONFIDENCE, mean_interval, paired_difference
from tganbench.store import CELL_KEY, RecordedMetric, recorded_metrics

BASELINE = "scratch"
# The feature-space distance takes its name from the extractor (FD, or FID for Inception) and shows the space.
FEATURE_DISTANCE = "fd"
# Columns besides the metrics' that a run with only failed cells may lack; they read as missing values.
TIME_COLUMNS = ("train_seconds", "steps_per_second", "eval_seconds", "trainable_params", "total_params")
# Columns of the full table that the terminal leaves to summary.md.
NOT_IN_TERMINAL = ("95% CI", "best step", "to target", "steps/s", "eval s", "trainable")
TERMINAL_WIDTH = 120
# A wrapped column is never narrower than this (a line may then pass the width).
MIN_WRAP_WIDTH = 12


def metric_label(cells: pd.DataFrame) -> str:
    """``FD[shapes]`` or ``FID[inception]``: the distance and the feature space it lives in."""
    return f"{cells['metric'].iloc[0]}[{cells['extractor'].iloc[0]}]"


def metric_title(metric: RecordedMetric, cells: pd.DataFrame, space: bool = True) -> str:
    """How tables and figures name ``metric``: its title; the feature distance as the extractor names it.

    With ``space`` the distance also names its feature space (``FD[shapes]``).
    """
    if metric.name != FEATURE_DISTANCE:
        return metric.title
    return metric_label(cells) if space else str(cells["metric"].iloc[0])


def metric_names(cells: pd.DataFrame, metrics: Sequence[RecordedMetric], space: bool = True) -> str:
    """``FD[shapes] and KID``: the metrics that are numbers (shares are explained apart), in display order."""
    return joined([metric_title(metric, cells, space) for metric in metrics if metric.unit != "share"])


def joined(names: Sequence[str]) -> str:
    """``a, b and c``."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def primary_metric(metrics: Sequence[RecordedMetric]) -> RecordedMetric | None:
    """The metric the intervals, differences, best values and time to quality are about (FD today)."""
    return next((metric for metric in metrics if metric.best), metrics[0] if metrics else None)


def with_result_columns(cells: pd.DataFrame, metrics: Sequence[RecordedMetric]) -> pd.DataFrame:
    """``cells`` with every metric and time column present (a run of failed cells lacks them): NaN where absent."""
    wanted = [*(column for metric in metrics for column in metric.columns.values())]
    wanted += [column for metric in metrics if metric.best for column in (metric.best_column, metric.best_step_column)]
    wanted += [*TIME_COLUMNS, "samples"]
    return cells.reindex(columns=[*cells.columns, *dict.fromkeys(c for c in wanted if c not in cells.columns)])


def time_to_quality(
    cells: pd.DataFrame, evals: pd.DataFrame, target: float | None = None, metric: RecordedMetric | None = None
) -> pd.DataFrame:
    """Per cell: the first evaluation whose ``metric`` reaches the target, as ``ttq_step`` and ``ttq_seconds``.

    ``metric`` is the primary metric (FD by default). The target is ``target``
    when given, else the final value of ``scratch`` for the same shots and seed
    (NaN when that cell is missing or not ok). Step 0, the untrained start,
    counts. NaN step and seconds mean "not reached".
    """
    metric = metric or primary_metric(recorded_metrics({}, cells))
    key = list(CELL_KEY)
    out = cells[key].copy()
    if metric.final not in cells:
        cells = cells.assign(**{metric.final: math.nan})
    if target is not None:
        out["target"] = float(target)
    else:
        scratch = cells[(cells["strategy"] == BASELINE) & (cells["status"] == "ok")]
        targets = scratch.set_index(["shots", "seed"])[metric.final]
        out["target"] = [targets.get((k, s), math.nan) for k, s in zip(out["shots"], out["seed"])]
    reached_by = (lambda values, goal: values >= goal) if metric.higher_is_better else (lambda values, goal: values <= goal)
    steps, seconds = [], []
    has_curves = len(evals) > 0 and metric.headline in evals  # a final-only metric has no curve to reach it on
    curves = evals.sort_values("step").groupby(key, sort=False) if has_curves else None
    for cell, goal in zip(out[key].itertuples(index=False, name=None), out["target"]):
        curve = curves.get_group(cell) if has_curves and cell in curves.groups else None
        reached = curve[reached_by(curve[metric.headline], goal)] if curve is not None and math.isfinite(goal) else None
        if reached is None or reached.empty:
            steps.append(math.nan)
            seconds.append(math.nan)
        else:
            steps.append(float(reached["step"].iloc[0]))
            seconds.append(float(reached["train_seconds"].iloc[0]))
    out["ttq_step"], out["ttq_seconds"] = steps, seconds
    return out


def summary_table(
    cells: pd.DataFrame,
    evals: pd.DataFrame,
    target: float | None = None,
    metrics: Sequence[RecordedMetric] | None = None,
) -> pd.DataFrame:
    """One row per (shots, strategy) in run order, aggregated over seeds.

    ``metrics`` are the folder's recorded metrics (by default the list a folder
    without a record holds). The primary metric's final value as mean ± std
    with its 95% interval, the paired difference to ``scratch`` with its
    interval, its best value and step; every other metric's headline; time to
    quality; and time per cell.
    """
    metrics = list(recorded_metrics({}, cells) if metrics is None else metrics)
    primary = primary_metric(metrics)
    cells = with_result_columns(cells, metrics)
    has_baseline = (cells["strategy"] == BASELINE).any()
    show_ttq = primary is not None and (target is not None or has_baseline)
    if show_ttq:
        ttq = time_to_quality(cells, evals, target, primary)
        cells = cells.assign(ttq_step=ttq["ttq_step"].values, ttq_seconds=ttq["ttq_seconds"].values)
    rows = []
    for (shots, label), group in cells.groupby(["shots", "strategy"], sort=False):
        ok = group[group["status"] == "ok"]
        row: dict[str, Any] = {"shots": shots, "strategy": label, "seeds": len(group)}
        if len(ok) < len(group):
            counts = group.loc[group["status"] != "ok", "status"].value_counts()
            row["not ok"] = ", ".join(f"{count} {status}" for status, count in counts.items())
        for metric in metrics:
            if metric is primary:
                row.update(_primary_columns(metric, metric_title(metric, cells), cells, group, has_baseline))
            else:
                row[metric_title(metric, cells)] = _headline(metric, ok)
        if show_ttq:
            row["to target"] = _time_to_target(group)
        row["train s"] = _mean(group["train_seconds"], ".1f")
        row["steps/s"] = _mean(group["steps_per_second"], ".1f")
        row["eval s"] = _mean(group["eval_seconds"], ".1f")
        row["trainable"] = _parameters(group)
        rows.append(row)
    if any("not ok" in row for row in rows):
        for row in rows:
            row.setdefault("not ok", "")
    table = pd.DataFrame(rows)
    if "not ok" in table:  # keep the column beside "seeds"
        table.insert(3, "not ok", table.pop("not ok"))
    return table


def _primary_columns(
    metric: RecordedMetric, title: str, cells: pd.DataFrame, group: pd.DataFrame, has_baseline: bool
) -> dict[str, str]:
    """Final value with its interval, the paired difference to scratch, best value and its step."""
    ok = group[group["status"] == "ok"]
    mean, std, low, high = mean_interval(ok[metric.final])
    columns = {f"{title} final": _mean_std(mean, std, ".2f"), "95% CI": _interval(low, high, ".2f")}
    if has_baseline:
        columns[f"Δ vs {BASELINE} [95% CI]"] = _difference(metric, cells, group)
    if metric.best:
        mean, std, _, _ = mean_interval(ok[metric.best_column])
        columns[f"{title} best"] = _mean_std(mean, std, ".2f")
        columns["best step"] = _mean(ok[metric.best_step_column], ".0f")
    return columns


def _headline(metric: RecordedMetric, ok: pd.DataFrame) -> str:
    """A metric's final headline value as mean ± std: a share in percent, a number to three figures."""
    if metric.unit == "share":
        return _mean_std(*mean_interval(ok[metric.final] * 100)[:2], ".0f")
    return _mean_std(*mean_interval(ok[metric.final])[:2], ".3g")


def _difference(metric: RecordedMetric, cells: pd.DataFrame, group: pd.DataFrame) -> str:
    shots, label = group["shots"].iloc[0], group["strategy"].iloc[0]
    if label == BASELINE:
        return "(reference)"
    baseline = cells[(cells["strategy"] == BASELINE) & (cells["shots"] == shots)]
    final = group.assign(value=group[metric.final].where(group["status"] == "ok"))
    base = baseline.assign(value=baseline[metric.final].where(baseline["status"] == "ok"))
    paired = final.merge(base, on=["shots", "seed"], suffixes=("", "_base"))
    mean, low, high = paired_difference(paired["value"], paired["value_base"])
    if math.isnan(mean):
        return ""
    text = f"{mean:+.2f}"
    return text if math.isnan(low) else f"{text} [{low:+.2f}, {high:+.2f}]"


def _parameters(group: pd.DataFrame) -> str:
    """``trainable / total`` parameters, from the first cell that recorded them (failed cells did not)."""
    known = group.dropna(subset=["trainable_params", "total_params"])
    if known.empty:
        return ""
    return f"{int(known['trainable_params'].iloc[0]):,} / {int(known['total_params'].iloc[0]):,}"


def _time_to_target(group: pd.DataFrame) -> str:
    reached = group.dropna(subset=["ttq_step"])
    if reached.empty:
        return "not reached"
    text = f"{reached['ttq_step'].mean():.0f} steps, {reached['ttq_seconds'].mean():.1f} s"
    return text if len(reached) == len(group) else f"{text} ({len(reached)}/{len(group)} seeds)"


def _mean(values: pd.Series, spec: str) -> str:
    """The mean of the finite values, empty for none."""
    return _mean_std(mean_interval(values)[0], math.nan, spec)


def _mean_std(mean: float, std: float, spec: str) -> str:
    """``mean`` for one value, ``mean ± std`` for several, empty for none."""
    if math.isnan(mean):
        return ""
    if math.isnan(std):
        return format(mean, spec)
    return f"{format(mean, spec)} ± {format(std, spec)}"


def _interval(low: float, high: float, spec: str) -> str:
    return "" if math.isnan(low) else f"[{format(low, spec)}, {format(high, spec)}]"


def summary_caption(
    cells: pd.DataFrame, target: float | None = None, metrics: Sequence[RecordedMetric] | None = None
) -> str:
    """The line above the table: what the metrics were computed on and how to read the columns."""
    metrics = list(recorded_metrics({}, cells) if metrics is None else metrics)
    primary = primary_metric(metrics)
    seeds = cells["seed"].nunique()
    primary_title = primary.title if primary else ""
    goal = "<=" if primary is None or not primary.higher_is_better else ">="
    target_text = (f"{primary_title} {goal} {target:g}" if target is not None
                   else f"{primary_title} {goal} {BASELINE}'s final {primary_title} (same seed and shots)")
    shares = "".join(f" {metric.title} = {metric.description}." for metric in metrics if metric.unit == "share")
    return (
        f"{_lead(cells, metrics)}; mean ± std over {seeds} seed{'s' if seeds != 1 else ''}, "
        f"{CONFIDENCE:.0%} t-interval, Δ = paired difference to {BASELINE} on the same seeds; "
        f"to target = first evaluation with {target_text}." + shares
    )


def _lead(cells: pd.DataFrame, metrics: Sequence[RecordedMetric]) -> str:
    """``FD[shapes] and KID on 200 generated vs 200 held-out target images``: the numbers and what they compare."""
    first = cells.iloc[0]
    return (f"{metric_names(cells, metrics)} on {int(first['n_generated'])} generated vs "
            f"{int(first['n_reference'])} held-out target images")


def format_table(summary: pd.DataFrame, markdown: bool = False) -> str:
    """Render a table as plain text (terminal) or GitHub Markdown."""
    return tabulate(summary, headers="keys", tablefmt="github" if markdown else "simple", showindex=False)


def compact_table(summary: pd.DataFrame, width: int = TERMINAL_WIDTH) -> str:
    """The summary for a terminal: shots, strategy, seeds, the metrics as mean ± std and train s.

    Intervals, differences, best values, time to quality and parameter counts
    stay in ``summary.md``. Long strategy labels wrap so that the table fits ``width``.
    """
    table = summary.drop(columns=[column for column in summary.columns if column in NOT_IN_TERMINAL
                                  or column.startswith("Δ ") or column.endswith(" best")])
    return fit_to_width(table.values.tolist(), list(table.columns), wrap={"strategy"}, width=width)


def fit_to_width(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], wrap: set[str], width: int = TERMINAL_WIDTH,
    numbers: bool = True,
) -> str:
    """A plain-text table at most ``width`` wide where it can be: the ``wrap`` columns wrap to share the room.

    The other columns keep their full width (a line is longer only when they
    alone do not fit). The narrowest wrapping column is served first, so a
    short one is never wrapped to make room for a long one. ``numbers``: align
    numeric columns as numbers.
    """
    # tabulate pads every header by two spaces, and puts two spaces between columns
    natural = [max([len(str(header)) + 2, *(len(str(row[i])) for row in rows)]) for i, header in enumerate(headers)]
    wrapped = sorted((i for i, header in enumerate(headers) if header in wrap), key=lambda i: natural[i])
    room = width - 2 * (len(headers) - 1) - sum(w for i, w in enumerate(natural) if i not in wrapped)
    limits: dict[int, int] = {}
    for index, i in enumerate(wrapped):
        limits[i] = max(MIN_WRAP_WIDTH, min(natural[i], room // (len(wrapped) - index)))
        room -= limits[i]
    return tabulate(rows, headers=list(headers), tablefmt="simple", disable_numparse=not numbers,
                    maxcolwidths=[limits.get(i) for i in range(len(headers))] if limits else None)


def compact_caption(cells: pd.DataFrame, metrics: Sequence[RecordedMetric], width: int = TERMINAL_WIDTH) -> str:
    """The lines above the terminal's table: what the numbers are, wrapped to ``width``."""
    seeds = cells["seed"].nunique()
    shares = "".join(f" {metric.title} = {metric.description}." for metric in metrics if metric.unit == "share")
    text = (f"{_lead(cells, metrics)}; mean ± std over {seeds} seed{'s' if seeds != 1 else ''}; "
            f"train s = training seconds per cell.{shares} Intervals, differences to {BASELINE} and time to "
            "quality are in summary.md.")
    return textwrap.fill(text, width)
