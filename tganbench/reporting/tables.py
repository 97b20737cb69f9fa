"""The summary table: cells aggregated over seeds, with intervals, paired differences and time to quality.

One row per (shots, strategy). The columns follow the metrics the results
folder records: the *primary* metric (the one whose best value is kept, FD
today) gets its final value with a 95% interval, the paired difference to
``scratch`` (the baseline), its best value and step, and time to quality;
every other metric gets its headline as mean ± std. After each shot count's
strategies come the reference rows of references.csv (``copy-shots``,
``real``, ``source``): what the metrics give images that are not a trained
strategy's, labelled ``<kind> (reference)``, with the metrics only.
``summary.md`` shows the full table; :func:`compact_table` is the one a
terminal shows (it fits 120 columns). :func:`copying_warnings` names the cells
whose samples copy their training shots.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any, Sequence

import pandas as pd
from tabulate import tabulate

from tganbench.reporting.statistics import (
    CONFIDENCE,
    mean_interval,
    nested_mean_interval,
    nested_paired_difference,
)
from tganbench.metrics.verdicts import COPYING_THRESHOLD
from tganbench.store import CELL_KEY, NO_SOURCE, REFERENCE_KINDS, RecordedMetric, recorded_metrics, with_source_seed

BASELINE = "scratch"
# How tables and figures name the baseline's role (the word "reference" means the rows of references.csv).
BASELINE_ROLE = "(baseline)"
# The kinds of references.csv rows, in display order: the memorisation trap, the floor, the starting point.
REFERENCE_MEANINGS = {
    "copy-shots": "the training shots themselves, tiled to the generated count (what memorising them scores)",
    "real": "real target images that are neither shots nor held out (the floor)",
    "source": "the untouched source model's samples (the starting point)",
}
# The data-copying statistic C_T (Meehan et al., AISTATS 2020) is recorded as the metric of this name.
COPYING = "copying"
COPYING_MARK = "COPYING"
# The feature-space distance takes its name from the extractor (FD, or FID for Inception) and shows the space.
FEATURE_DISTANCE = "fd"
# Columns besides the metrics' that a run with only failed cells may lack; they read as missing values.
TIME_COLUMNS = ("train_seconds", "steps_per_second", "eval_seconds", "trainable_params", "total_params")
# Columns of the full table that the terminal leaves to summary.md.
NOT_IN_TERMINAL = ("95% CI", "best step", "to target", "steps/s", "eval s", "trainable")
# The full table's column of the primary metric's final value ends so.
FINAL_SUFFIX = " final"
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
    wanted += [metric.oracle_column for metric in metrics if metric.select_by]
    wanted += [*TIME_COLUMNS, "samples"]
    return cells.reindex(columns=[*cells.columns, *dict.fromkeys(c for c in wanted if c not in cells.columns)])


def time_to_quality(
    cells: pd.DataFrame, evals: pd.DataFrame, target: float | None = None, metric: RecordedMetric | None = None
) -> pd.DataFrame:
    """Per cell: the first evaluation whose ``metric`` reaches the target, as ``ttq_step`` and ``ttq_seconds``.

    ``metric`` is the primary metric (FD by default). The target is ``target``
    when given, else the final value of ``scratch`` for the same shots and seed
    (NaN when that cell is missing or not ok; every source checkpoint's cell
    aims for the same scratch cell). Step 0, the untrained start,
    counts. NaN step and seconds mean "not reached".
    """
    metric = metric or primary_metric(recorded_metrics({}, cells))
    cells, evals = with_source_seed(cells), with_source_seed(evals)
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
    references: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (shots, strategy) in run order, aggregated over seeds (and source checkpoints).

    ``metrics`` are the folder's recorded metrics (by default the list a folder
    without a record holds). The primary metric's final value as mean ± std
    with its 95% interval, the paired difference to ``scratch`` with its
    interval, its best value and step (and, when a validation column chose the
    best step, the oracle best); every other metric's headline; time to
    quality; and time per cell. A copying cell's C_T is marked ``COPYING``.

    ``references`` (references.csv) adds, after each shot count's strategies,
    one row per reference kind with the metrics alone (no Δ, times or parameters).
    """
    metrics = list(recorded_metrics({}, cells) if metrics is None else metrics)
    primary = primary_metric(metrics)
    cells = with_result_columns(with_source_seed(cells), metrics)
    references = with_source_seed(references) if references is not None else pd.DataFrame()
    has_baseline = (cells["strategy"] == BASELINE).any()
    show_ttq = primary is not None and (target is not None or has_baseline)
    if show_ttq:
        ttq = time_to_quality(cells, evals, target, primary)
        cells = cells.assign(ttq_step=ttq["ttq_step"].values, ttq_seconds=ttq["ttq_seconds"].values)
    rows = []
    for shots in pd.unique(cells["shots"]):
        at_shots = cells[cells["shots"] == shots]
        for label in pd.unique(at_shots["strategy"]):
            group = at_shots[at_shots["strategy"] == label]
            rows.append(_strategy_row(group, cells, metrics, primary, has_baseline, show_ttq))
        if not references.empty and "reference" in references:
            rows += _reference_rows(references[references["shots"] == shots], cells, metrics, primary)
    if any("not ok" in row for row in rows):
        for row in rows:
            row.setdefault("not ok", "")
    # reference rows leave the strategy-only columns empty
    table = pd.DataFrame(rows).astype(object).fillna("")
    if "not ok" in table:  # keep the column beside "seeds"
        table.insert(3, "not ok", table.pop("not ok"))
    return table


def _strategy_row(
    group: pd.DataFrame,
    cells: pd.DataFrame,
    metrics: Sequence[RecordedMetric],
    primary: RecordedMetric | None,
    has_baseline: bool,
    show_ttq: bool,
) -> dict[str, Any]:
    """The summary row of one (shots, strategy): its cells over seeds and source checkpoints."""
    ok = group[group["status"] == "ok"]
    row: dict[str, Any] = {"shots": group["shots"].iloc[0], "strategy": group["strategy"].iloc[0],
                           "seeds": _seeds_column(group)}
    if len(ok) < len(group):
        counts = group.loc[group["status"] != "ok", "status"].value_counts()
        row["not ok"] = ", ".join(f"{count} {status}" for status, count in counts.items())
    for metric in metrics:
        if metric is primary:
            row.update(_primary_columns(metric, metric_title(metric, cells), cells, group, has_baseline))
        else:
            row[metric_title(metric, cells)] = _headline(metric, ok, mark_copying=True)
    if show_ttq:
        row["to target"] = _time_to_target(group)
    row["train s"] = _mean(group["train_seconds"], ".1f")
    row["steps/s"] = _mean(group["steps_per_second"], ".1f")
    row["eval s"] = _mean(group["eval_seconds"], ".1f")
    row["trainable"] = _parameters(group)
    return row


def _reference_rows(
    references: pd.DataFrame, cells: pd.DataFrame, metrics: Sequence[RecordedMetric], primary: RecordedMetric | None
) -> list[dict[str, Any]]:
    """One row per reference kind of one shot count: each metric as mean ± std over its rows, nothing else."""
    rows = []
    for kind in sorted(pd.unique(references["reference"]), key=reference_order):
        group = with_result_columns(references[references["reference"] == kind], metrics)
        row: dict[str, Any] = {"shots": group["shots"].iloc[0], "strategy": reference_label(kind),
                               "seeds": _seeds_column(group)}
        for metric in metrics:
            title = metric_title(metric, cells)
            if metric is primary:
                row[f"{title}{FINAL_SUFFIX}"] = _mean_std(*mean_interval(group[metric.final])[:2], ".2f")
            else:
                row[title] = _headline(metric, group, mark_copying=False)
        rows.append(row)
    return rows


def reference_label(kind: str) -> str:
    """How tables and figures name a reference kind, so that nobody takes it for a strategy."""
    return f"{kind} (reference)"


def source_checkpoints(cells: pd.DataFrame) -> list[int]:
    """The seeds of the source checkpoints the cells started from (none for scratch or a folder that predates them)."""
    cells = with_source_seed(cells)
    if "source_seed" not in cells:
        return []
    return sorted(int(seed) for seed in pd.unique(cells["source_seed"]) if seed != NO_SOURCE)


def _seeds_column(group: pd.DataFrame) -> int | str:
    """What the ``seeds`` column says: the number of cells, or ``2 x 2 sources`` when they nest in checkpoints."""
    sources = len(source_checkpoints(group))
    return f"{group['seed'].nunique()} x {sources} sources" if sources > 1 else len(group)


def _primary_columns(
    metric: RecordedMetric, title: str, cells: pd.DataFrame, group: pd.DataFrame, has_baseline: bool
) -> dict[str, str]:
    """Final value with its interval, the paired difference to scratch, best value and its step, oracle best."""
    ok = group[group["status"] == "ok"]
    mean, std, low, high = nested_mean_interval(ok[metric.final], ok["source_seed"])
    columns = {f"{title}{FINAL_SUFFIX}": _mean_std(mean, std, ".2f"), "95% CI": _interval(low, high, ".2f")}
    if has_baseline:
        columns[f"Δ vs {BASELINE} [95% CI]"] = _difference(metric, cells, group)
    if metric.best:
        mean, std, _, _ = mean_interval(ok[metric.best_column])
        columns[f"{title} best"] = _mean_std(mean, std, ".2f")
        columns["best step"] = _mean(ok[metric.best_step_column], ".0f")
    if metric.select_by:
        mean, std, _, _ = mean_interval(ok[metric.oracle_column])
        columns[oracle_title(metric, title)] = _mean_std(mean, std, ".2f")
    return columns


def oracle_title(metric: RecordedMetric, title: str) -> str:
    """``FD[shapes] oracle min``: the column of the best test value over the evaluations (oracle early stopping)."""
    return f"{title} oracle {'max' if metric.higher_is_better else 'min'}"


def _headline(metric: RecordedMetric, rows: pd.DataFrame, mark_copying: bool) -> str:
    """A metric's final headline value as mean ± std: a share in percent, a number to three figures.

    With ``mark_copying``, the copying statistic is followed by ``COPYING``
    when any of the rows copies its training shots.
    """
    if metric.unit == "share":
        return _mean_std(*mean_interval(rows[metric.final] * 100)[:2], ".0f")
    text = _mean_std(*mean_interval(rows[metric.final])[:2], ".3g")
    if mark_copying and metric.name == COPYING and _copies(rows[metric.final]).any():
        return f"{text} {COPYING_MARK}"
    return text


def _copies(values: pd.Series) -> pd.Series:
    """Where a C_T value says the samples copy the training shots (NaN never does)."""
    return pd.to_numeric(values, errors="coerce") < COPYING_THRESHOLD


def _difference(metric: RecordedMetric, cells: pd.DataFrame, group: pd.DataFrame) -> str:
    """The paired difference to scratch: each cell against scratch's cell of the same seed, nested in checkpoints."""
    shots, label = group["shots"].iloc[0], group["strategy"].iloc[0]
    if label == BASELINE:
        return BASELINE_ROLE
    baseline = cells[(cells["strategy"] == BASELINE) & (cells["shots"] == shots)]
    final = group.assign(value=group[metric.final].where(group["status"] == "ok"))
    base = baseline.assign(value=baseline[metric.final].where(baseline["status"] == "ok"))[["seed", "value"]]
    # scratch has no source checkpoint: every checkpoint's cell of a seed pairs with scratch's cell of that seed
    paired = final.merge(base, on="seed", suffixes=("", "_base"))
    mean, low, high = nested_paired_difference(paired["value"], paired["value_base"], paired["source_seed"])
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
    unit = "cells" if len(source_checkpoints(group)) > 1 else "seeds"
    return text if len(reached) == len(group) else f"{text} ({len(reached)}/{len(group)} {unit})"


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


def copying_metric(metrics: Sequence[RecordedMetric]) -> RecordedMetric | None:
    """The data-copying statistic among ``metrics`` (recorded under the name ``copying``), if any."""
    return next((metric for metric in metrics if metric.name == COPYING), None)


def copying_warnings(cells: pd.DataFrame, metrics: Sequence[RecordedMetric]) -> list[str]:
    """One sentence per (shots, strategy) with an ok cell whose C_T is below ``COPYING_THRESHOLD``.

    Each names the strategy, the shot count and its C_T, and says what it means.
    Reference rows are never cells, so copy-shots (which copies by design) is
    never warned about. Empty when nothing copies or the folder has no C_T.
    """
    metric = copying_metric(metrics)
    if metric is None or metric.final not in cells:
        return []
    ok = cells[cells["status"] == "ok"]
    warnings = []
    for (shots, label), group in ok.groupby(["shots", "strategy"], sort=False):
        copying = _copies(group[metric.final])
        if not copying.any():
            continue
        values = pd.to_numeric(group[metric.final], errors="coerce")
        count = int(copying.sum())
        if count == len(group):
            which = "its only cell" if count == 1 else f"all {count} of its cells"
            value = f"C_T = {values.mean():.1f} ({which} below {COPYING_THRESHOLD:g})"
        else:  # the mean over every cell would hide the copying ones, so both means are given
            value = (f"C_T below {COPYING_THRESHOLD:g} in {count} of its {len(group)} cells "
                     f"(mean {values[copying].mean():.1f} over those, {values.mean():.1f} over all)")
        warnings.append(
            f"COPYING: {label} at {shots} shots has {value}: its samples sit closer to its training shots than "
            "real held-out images do, so it reproduces its training images, and FD and KID reward that."
        )
    return warnings


def summary_caption(
    cells: pd.DataFrame,
    target: float | None = None,
    metrics: Sequence[RecordedMetric] | None = None,
    split: dict[str, int] | None = None,
    references: pd.DataFrame | None = None,
) -> str:
    """The line above the table: what the metrics were computed on and how to read the columns.

    ``split`` is ``manifest["split"]`` (validation and test sizes) when the run
    had one; ``references`` the folder's references.csv, explained when not empty.
    """
    metrics = list(recorded_metrics({}, cells) if metrics is None else metrics)
    primary = primary_metric(metrics)
    primary_title = primary.title if primary else ""
    goal = "<=" if primary is None or not primary.higher_is_better else ">="
    target_text = (f"{primary_title} {goal} {target:g}" if target is not None
                   else f"{primary_title} {goal} {BASELINE}'s final {primary_title} (same seed and shots)")
    sources = len(source_checkpoints(cells))
    nested = (f" (its interval: over the {sources} source checkpoints' mean differences)" if sources > 1 else "")
    best = f" {_best_text(primary, split)}." if primary is not None and primary.best else ""
    return (
        f"{_lead(cells, metrics)}; mean ± std over {_units_text(cells)}; {_coverage_text(cells)}; "
        f"Δ = paired difference to {BASELINE} (the baseline) on the same seeds{nested}; "
        f"to target = first evaluation with {target_text}.{best}" + _shares_text(metrics)
        + _copying_text(metrics) + _references_text(references)
    )


def _coverage_text(cells: pd.DataFrame) -> str:
    """Which variance the 95% intervals cover: seeds alone (one source checkpoint) or seeds and checkpoints."""
    sources = len(source_checkpoints(cells))
    if sources > 1:
        return (f"{CONFIDENCE:.0%} t-interval over the {sources} source checkpoints' means "
                "(covers source and seed variance)")
    return (f"{CONFIDENCE:.0%} t-interval over seeds, conditional on one source checkpoint "
            "(source variance not covered)")


def _units_text(cells: pd.DataFrame) -> str:
    """``2 seeds``, or ``2 seeds x 2 source checkpoints``."""
    seeds, sources = cells["seed"].nunique(), len(source_checkpoints(cells))
    text = f"{seeds} seed{'s' if seeds != 1 else ''}"
    return f"{text} x {sources} source checkpoints" if sources > 1 else text


def _best_text(primary: RecordedMetric, split: dict[str, int] | None) -> str:
    """What the best column holds: the validation-chosen test value, or (older folders) the lowest value."""
    title = primary.title
    if not primary.select_by:
        return f"best = {'highest' if primary.higher_is_better else 'lowest'} {title} over evaluations"
    sizes = f" ({split['validation']} validation / {split['test']} test held-out images)" if split else ""
    extreme = "highest" if primary.higher_is_better else "lowest"
    return (f"best = test {title} at the evaluation with the {extreme} validation {title}{sizes}; "
            f"oracle = the {extreme} test {title} over evaluations (oracle early stopping, optimistic)")


def _shares_text(metrics: Sequence[RecordedMetric]) -> str:
    return "".join(f" {metric.title} = {metric.description}." for metric in metrics if metric.unit == "share")


def _copying_text(metrics: Sequence[RecordedMetric]) -> str:
    metric = copying_metric(metrics)
    if metric is None:
        return ""
    return (f" {metric.title} = data-copying statistic C_T; below {COPYING_THRESHOLD:g} ({COPYING_MARK}) the "
            "samples sit closer to the training shots than held-out images do.")


def _references_text(references: pd.DataFrame | None) -> str:
    if references is None or references.empty or "reference" not in references:
        return ""
    meanings = "; ".join(f"{kind} = {REFERENCE_MEANINGS.get(kind, 'a reference set of images')}"
                         for kind in sorted(pd.unique(references["reference"]), key=reference_order))
    return f" Rows marked (reference) are not strategies but images scored the same way: {meanings}."


def reference_order(kind: str) -> int:
    """Where a reference kind goes in tables and legends: ``REFERENCE_KINDS`` order, unknown kinds last."""
    return REFERENCE_KINDS.index(kind) if kind in REFERENCE_KINDS else len(REFERENCE_KINDS)


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

    Intervals, differences, best and oracle values, time to quality and
    parameter counts stay in ``summary.md``. Long strategy labels wrap so that
    the table fits ``width``; when the columns alone are wider than that, they
    continue in a second table below (and so on), each repeating shots and strategy.
    """
    table = summary.drop(columns=[column for column in summary.columns if column in NOT_IN_TERMINAL
                                  or column.startswith("Δ ") or column.endswith((" best", " oracle min",
                                                                                 " oracle max"))])
    keys = [column for column in ("shots", "strategy") if column in table]
    blocks = _column_blocks(table, keys, [column for column in table.columns if column not in keys], width)
    return "\n\n".join(fit_to_width(table[keys + block].values.tolist(), keys + block, wrap={"strategy"}, width=width)
                       for block in blocks)


def _column_blocks(table: pd.DataFrame, keys: list[str], columns: list[str], width: int) -> list[list[str]]:
    """``columns`` in order, cut into runs that fit ``width`` beside the ``keys`` (strategy wrapped to its minimum)."""
    def natural(column: str) -> int:
        return max([len(str(column)) + 2, *(len(str(value)) for value in table[column])])

    keys_width = sum(min(natural(key), MIN_WRAP_WIDTH) if key == "strategy" else natural(key) for key in keys)
    blocks: list[list[str]] = [[]]
    used = keys_width
    for column in columns:
        needed = 2 + natural(column)  # two spaces between columns
        if blocks[-1] and used + needed > width:
            blocks.append([])
            used = keys_width
        blocks[-1].append(column)
        used += needed
    return blocks


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


def compact_caption(
    cells: pd.DataFrame,
    metrics: Sequence[RecordedMetric],
    width: int = TERMINAL_WIDTH,
    references: pd.DataFrame | None = None,
) -> str:
    """The lines above the terminal's table: what the numbers are, wrapped to ``width``."""
    rows = (" Rows marked (reference) are images scored the same way, not strategies."
            if references is not None and not references.empty else "")
    text = (f"{_lead(cells, metrics)}; mean ± std over {_units_text(cells)}; "
            f"train s = training seconds per cell.{_shares_text(metrics)}{_copying_text(metrics)}{rows} "
            f"Intervals, differences to {BASELINE} and time to quality are in summary.md.")
    return textwrap.fill(text, width)


def compact_warnings(cells: pd.DataFrame, metrics: Sequence[RecordedMetric], width: int = TERMINAL_WIDTH) -> str:
    """The copying warnings (:func:`copying_warnings`) for a terminal, wrapped to ``width``; empty when none."""
    return "\n".join(textwrap.fill(line, width, subsequent_indent="  ") for line in copying_warnings(cells, metrics))
