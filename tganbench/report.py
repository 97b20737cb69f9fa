"""Tables people read: cells aggregated over seeds with intervals, paired differences and time to quality.

Statistics come from scipy.stats: a 95% Student-t interval for the mean over
seeds, and for every transfer strategy a paired t interval of its difference to
``scratch`` on the same seeds (the seeds fix the shots, the initialisation, the
training and the evaluation noise, so the pairing removes their shared variance).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

CONFIDENCE = 0.95
BASELINE = "scratch"
CELL_KEY = ["pair", "shots", "strategy", "seed"]
# Columns a run that only has failed cells may lack; the summary treats them as missing values.
RESULT_COLUMNS = ("fd_final", "fd_best", "fd_best_step", "kid_mean", "train_seconds", "steps_per_second",
                  "eval_seconds", "trainable_params", "total_params")


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


def time_to_quality(cells: pd.DataFrame, evals: pd.DataFrame, fd_target: float | None = None) -> pd.DataFrame:
    """Per cell: the first evaluation whose FD is at most the target, as ``ttq_step`` and ``ttq_seconds``.

    The target is ``fd_target`` when given, else the final FD of ``scratch`` for
    the same shots and seed (NaN when that cell is missing or not ok). Step 0, the
    untrained start, counts. NaN step and seconds mean "not reached".
    """
    out = cells[CELL_KEY].copy()
    if "fd_final" not in cells:
        cells = cells.assign(fd_final=math.nan)
    if fd_target is not None:
        out["fd_target"] = float(fd_target)
    else:
        scratch = cells[(cells["strategy"] == BASELINE) & (cells["status"] == "ok")]
        targets = scratch.set_index(["pair", "shots", "seed"])["fd_final"]
        out["fd_target"] = [targets.get((p, k, s), math.nan) for p, k, s in zip(out["pair"], out["shots"], out["seed"])]
    steps, seconds = [], []
    curves = evals.sort_values("step").groupby(CELL_KEY, sort=False) if len(evals) else {}
    for key, target in zip(out[CELL_KEY].itertuples(index=False, name=None), out["fd_target"]):
        curve = curves.get_group(key) if len(evals) and key in curves.groups else None
        reached = curve[curve["fd"] <= target] if curve is not None and math.isfinite(target) else None
        if reached is None or reached.empty:
            steps.append(math.nan)
            seconds.append(math.nan)
        else:
            steps.append(float(reached["step"].iloc[0]))
            seconds.append(float(reached["train_seconds"].iloc[0]))
    out["ttq_step"], out["ttq_seconds"] = steps, seconds
    return out


def metric_label(cells: pd.DataFrame) -> str:
    """``FD[shapes]`` or ``FID[inception]``: the metric and the feature space it lives in."""
    return f"{cells['metric'].iloc[0]}[{cells['extractor'].iloc[0]}]"


def summary_table(cells: pd.DataFrame, evals: pd.DataFrame, fd_target: float | None = None) -> pd.DataFrame:
    """One row per (shots, strategy) in run order, aggregated over seeds.

    FD final as mean ± std with its 95% interval, the paired difference to
    ``scratch`` with its interval, FD best and its step, KID, time to quality,
    and time per cell.
    """
    metric = metric_label(cells)
    cells = cells.reindex(columns=[*cells.columns, *(c for c in RESULT_COLUMNS if c not in cells.columns)])
    ttq = time_to_quality(cells, evals, fd_target)
    cells = cells.assign(ttq_step=ttq["ttq_step"].values, ttq_seconds=ttq["ttq_seconds"].values)
    has_baseline = (cells["strategy"] == BASELINE).any()
    show_ttq = fd_target is not None or has_baseline
    rows = []
    for (shots, label), group in cells.groupby(["shots", "strategy"], sort=False):
        ok = group[group["status"] == "ok"]
        row: dict[str, Any] = {"shots": shots, "strategy": label, "seeds": len(group)}
        if len(ok) < len(group):
            counts = group.loc[group["status"] != "ok", "status"].value_counts()
            row["not ok"] = ", ".join(f"{count} {status}" for status, count in counts.items())
        mean, std, low, high = mean_interval(ok["fd_final"])
        row[f"{metric} final"] = _mean_std(mean, std, ".2f")
        row["95% CI"] = _interval(low, high, ".2f")
        if has_baseline:
            row[f"Δ vs {BASELINE} [95% CI]"] = _difference(cells, group, shots, label)
        mean, std, _, _ = mean_interval(ok["fd_best"])
        row[f"{metric} best"] = _mean_std(mean, std, ".2f")
        row["best step"] = _mean(ok["fd_best_step"], ".0f")
        row["KID"] = _mean_std(*mean_interval(ok["kid_mean"])[:2], ".3g")
        if "recognised" in cells:
            row["recognised"] = _mean_std(*mean_interval(ok["recognised"] * 100)[:2], ".0f")
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


def _difference(cells: pd.DataFrame, group: pd.DataFrame, shots: int, label: str) -> str:
    if label == BASELINE:
        return "(reference)"
    baseline = cells[(cells["strategy"] == BASELINE) & (cells["shots"] == shots)]
    final = group.assign(fd=group["fd_final"].where(group["status"] == "ok"))
    base = baseline.assign(fd=baseline["fd_final"].where(baseline["status"] == "ok"))
    paired = final.merge(base, on=["pair", "shots", "seed"], suffixes=("", "_base"))
    mean, low, high = paired_difference(paired["fd"], paired["fd_base"])
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


def summary_caption(cells: pd.DataFrame, fd_target: float | None = None) -> str:
    """The line above the table: what the metric was computed on and how to read the columns."""
    first = cells.iloc[0]
    seeds = cells["seed"].nunique()
    target = f"FD <= {fd_target:g}" if fd_target is not None else f"FD <= {BASELINE}'s final FD (same seed and shots)"
    return (
        f"{metric_label(cells)} and KID on {int(first['n_generated'])} generated vs {int(first['n_reference'])} "
        f"held-out target images; mean ± std over {seeds} seed{'s' if seeds != 1 else ''}, "
        f"{CONFIDENCE:.0%} t-interval, Δ = paired difference to {BASELINE} on the same seeds; "
        f"to target = first evaluation with {target}."
        + (" recognised = % of the final samples the recognition network names as the target shape."
           if "recognised" in cells else "")
    )


def format_table(summary: pd.DataFrame, markdown: bool = False) -> str:
    """Render the summary as a plain-text (terminal) or GitHub-Markdown table."""
    return tabulate(summary, headers="keys", tablefmt="github" if markdown else "simple", showindex=False)


def summary_markdown(cells: pd.DataFrame, evals: pd.DataFrame, manifest: dict[str, Any]) -> str:
    """The ``summary.md`` page: the protocol in one paragraph, then the caption and the table."""
    config = manifest["config"]
    metric = cells["metric"].iloc[0]
    fd_target = config.get("fd_target")
    protocol = (
        f"Pair `{manifest.get('pair', config['pair'])}` (content fingerprint `{manifest['pair_fingerprint']}`, "
        f"reference set `{manifest.get('reference_fingerprint', '')}`), "
        f"shots {', '.join(map(str, config['shots']))} (nested: for each seed the smaller shot sets are inside "
        f"the larger), seeds {', '.join(map(str, config['seeds']))} (the same for every strategy), "
        f"{config['target_steps']} target steps "
        f"(batch {config['batch_size']}, {config['resolution']}x{config['resolution']}, width {config['width']}) "
        f"from {_source_text(manifest)}. {metric} and KID use the "
        f"`{config['feature_extractor']}` feature extractor on {config['n_generated']} generated images "
        f"(fixed noise per seed, the same for every strategy) against {manifest['n_reference']} held-out target "
        f"images. Device: {manifest['device']}. Times exclude evaluation; {_source_time_text(manifest)}."
    )
    caption = summary_caption(cells, fd_target)
    recognition = _recognition_text(manifest)
    if recognition:
        protocol = f"{protocol} {recognition}"
    table = format_table(summary_table(cells, evals, fd_target), markdown=True)
    return f"# tganbench results: {manifest['run_id']}\n\n{protocol}\n\n{caption}\n\n{table}\n"


def _source_text(manifest: dict[str, Any]) -> str:
    """Where the source weights came from, for the summary's protocol paragraph."""
    source = manifest.get("source") or {}
    shipped = source.get("shipped")
    if shipped:
        return (f"the source checkpoint shipped with tganbench (`{shipped['file']}`, checksum `{shipped['checksum']}`, "
                f"{shipped.get('steps', '?')} steps)")
    return f"one source checkpoint of {manifest['config']['source_steps']} steps"


def _source_time_text(manifest: dict[str, Any]) -> str:
    """How long the source took, and whether this run paid for it."""
    source = manifest["source"]
    if source.get("shipped"):
        return f"this run trained no source (the shipped one took {source['seconds']:.0f} s, once)"
    return f"source pretraining took {source['seconds']:.1f} s{' (cached)' if source['cached'] else ''}"


def _recognition_text(manifest: dict[str, Any]) -> str:
    """What the source model's samples show, when the pair's images can be recognised."""
    source = manifest.get("source") or {}
    if "recognised_as_source" not in source:
        return ""
    families = manifest.get("families") or ["source", "target"]
    reference = manifest.get("reference_recognised")
    real = f" (held-out real {families[1]} images: {reference:.0%})" if reference is not None else ""
    return (f"The recognition network names {source['recognised_as_source']:.0%} of the source model's samples "
            f"{families[0]} (and {source['recognised_as_target']:.0%} {families[1]}); `recognised` is the share "
            f"of a model's final samples it names {families[1]}{real}.")
