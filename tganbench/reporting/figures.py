"""Figures of one run: metric curves over training, final values per strategy, and where the time went
(and, when a run used ADA, its augmentation probability over training).

Every function draws on its own ``matplotlib.figure.Figure`` (no pyplot, so no
display and no global state) and writes one PNG. Means and bands are over
seeds, with the same 95% Student-t interval as the summary table
(:func:`tganbench.reporting.statistics.nested_mean_interval`: over the source
checkpoints' means when the cells nest in several); non-finite values
(diverged cells) are left out rather than plotted. The curves show every
metric the folder records at every evaluation; the final-value and time
figures show the primary metric (FD today). The reference rows of
references.csv (copy-shots, real, source) are horizontal lines, never bars or
curves: they are images scored once, not strategies trained.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tganbench.reporting.statistics import mean_interval, nested_mean_interval
from tganbench.reporting.tables import (
    BASELINE,
    BASELINE_ROLE,
    joined,
    metric_title,
    primary_metric,
    reference_label,
    reference_order,
    source_checkpoints,
    with_result_columns,
)
from tganbench.store import NO_SOURCE, REFERENCE_GRID, RecordedMetric, Results, shots_grid, with_source_seed

DPI = 100
SOURCE_LABEL = "source pretraining (once, shared)"
SOURCE_COLOUR = "0.55"
PLOT_FILES = ("fd_curves.png", "final_fd.png", "time.png")
# ADA's probability p at each evaluation (tganbench.augmentations.ada); its figure is drawn when a run has it.
ADA_COLUMN = "ada_p"
ADA_PLOT = "ada_p.png"
# Each reference kind's horizontal line: (colour, line style), distinct from the strategies' solid lines.
REFERENCE_LINES = {"copy-shots": ("firebrick", ":"), "real": ("black", "-."),
                   "source": ("dimgray", (0, (6, 2, 1, 2, 1, 2)))}
OTHER_REFERENCE_LINE = ("0.4", (0, (1, 3)))
# How the sample overview titles each reference kind's grid.
REFERENCE_TITLES = {"copy-shots": "copied shots", "real": "real target images", "source": "source model"}


def strategy_colours(strategies: list[str]) -> dict[str, Any]:
    """One colour per strategy label, in run order, so a strategy looks the same in every figure."""
    palette = matplotlib.colormaps["tab10" if len(strategies) <= 10 else "tab20"]
    return {label: palette(index % palette.N) for index, label in enumerate(strategies)}


def curve_over_seeds(evals: pd.DataFrame, x: str = "step", column: str = "fd") -> pd.DataFrame:
    """Aggregate one strategy's evaluations over seeds at each step.

    Returns one row per step (sorted) with ``x`` (its mean over seeds, e.g.
    ``train_seconds``), ``mean``, ``low`` and ``high`` of ``column`` (the FD by
    default; 95% t-interval, over the source checkpoints' means when the
    evaluations nest in several; NaN bounds where fewer than two seeds have a
    finite value). Steps without any finite value are dropped.
    """
    evals = with_source_seed(evals)
    finite = evals[np.isfinite(evals[column].to_numpy(dtype=float))]
    rows = []
    for step, group in finite.groupby("step", sort=True):
        mean, _, low, high = nested_mean_interval(group[column], group["source_seed"])
        rows.append({"step": step, x: float(group[x].mean()), "mean": mean, "low": low, "high": high})
    return pd.DataFrame(rows, columns=list(dict.fromkeys(["step", x, "mean", "low", "high"])))


def plot_curves(
    cells: pd.DataFrame,
    evals: pd.DataFrame,
    metrics: list[RecordedMetric],
    path: Path,
    references: pd.DataFrame | None = None,
) -> Path:
    """Write :func:`curves_figure` to ``path``."""
    return _save(curves_figure(cells, evals, metrics, references), path)


def curves_figure(
    cells: pd.DataFrame, evals: pd.DataFrame, metrics: list[RecordedMetric], references: pd.DataFrame | None = None
) -> Figure:
    """Metrics over training steps: one row of panels per metric, one panel per shot count, one line per strategy.

    Lines are means over seeds with a 95% band. There is a row for the primary
    metric, and one for every other metric evaluated at every evaluation whose
    evaluations have a finite value; a share is plotted in percent. Each
    reference kind of ``references`` that holds the metric's final column is a
    horizontal line at its mean for the panel's shot count.
    """
    strategies = _run_order(cells)
    colours = strategy_colours(strategies)
    shots = sorted(cells["shots"].unique())
    primary = primary_metric(metrics)
    rows, titles = [], []
    for metric in metrics:
        column = metric.headline
        shown = column in evals and np.isfinite(evals[column].to_numpy(dtype=float)).any()
        if metric is not primary and not (metric.every_evaluation and shown):
            continue
        if column not in evals:
            evals = evals.assign(**{column: math.nan})
        if metric.unit == "share":
            column = f"{column} (percent)"
            evals = evals.assign(**{column: evals[metric.headline] * 100})
        percent = ", %" if metric.unit == "share" else ""
        rows.append((column, f"{metric_title(metric, cells)}{percent} ({metric.direction} is better)", metric))
        titles.append(metric_title(metric, cells))
    figure = Figure(figsize=(max(6.0, 4.5 * len(shots) + 2.0), 4.0 * len(rows)), layout="constrained")
    grid = figure.subplots(len(rows), len(shots), sharey="row", sharex="col", squeeze=False)
    kinds: set[str] = set()
    for axes, (column, ylabel, metric) in zip(grid, rows):
        _plot_curve_row(axes, cells, evals, column, colours)
        scale = 100.0 if metric.unit == "share" else 1.0
        for ax, k in zip(axes, shots):
            kinds |= _draw_reference_lines(ax, references, k, metric.final, scale)
        axes[0].set_ylabel(ylabel)
    handles = [Line2D([], [], color=colours[label], linestyle=_line_style(label), marker="o", markersize=3)
               for label in strategies]
    labels = _legend_labels(strategies)
    reference_handles, reference_labels = _reference_legend(kinds)
    figure.legend(handles + reference_handles, labels + reference_labels, loc="outside lower center",
                  ncols=min(len(labels) + len(reference_labels), 4), fontsize="small")
    figure.suptitle(f"{joined(titles)} during training: mean over {_seed_text(cells)}{_band_text(cells)}")
    return figure


def _plot_curve_row(axes: Any, cells: pd.DataFrame, evals: pd.DataFrame, column: str, colours: dict) -> None:
    """One row of curve panels (one per shot count) for ``column`` of the evaluations."""
    strategies = _run_order(cells)
    for ax, k in zip(axes, sorted(cells["shots"].unique())):
        drawn = False
        for label in strategies:
            subset = evals[(evals["shots"] == k) & (evals["strategy"] == label)]
            curve = curve_over_seeds(subset, column=column)
            if curve.empty:
                continue
            drawn = True
            ax.plot(curve["step"], curve["mean"], marker="o", markersize=3, color=colours[label],
                    linestyle=_line_style(label))
            band = np.isfinite(curve["low"].to_numpy(dtype=float))
            if band.any():
                ax.fill_between(curve["step"], curve["low"].where(band, curve["mean"]),
                                curve["high"].where(band, curve["mean"]), where=band, color=colours[label],
                                alpha=0.2, linewidth=0)
        if not drawn:
            _no_data(ax, "no evaluations")
        ax.set_title(f"{k} shots")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)


def plot_augmentation_probability(cells: pd.DataFrame, evals: pd.DataFrame, path: Path) -> Path:
    """ADA's augmentation probability ``p`` (the ``ada_p`` column) over training, in the curves' style.

    One panel per shot count, one line per method that recorded ``p`` (mean
    over seeds with a 95% band), in the colour the other figures give it.
    """
    strategies = _run_order(cells)
    colours = strategy_colours(strategies)
    shots = sorted(cells["shots"].unique())
    figure = Figure(figsize=(max(6.0, 4.5 * len(shots) + 2.0), 4.0), layout="constrained")
    axes = figure.subplots(1, len(shots), sharey=True, squeeze=False)[0]
    _plot_curve_row(axes, cells, evals, ADA_COLUMN, colours)
    for ax in axes:
        ax.set_ylim(-0.03, 1.03)
    axes[0].set_ylabel("augmentation probability p")
    shown = [label for label in strategies
             if np.isfinite(evals.loc[evals["strategy"] == label, ADA_COLUMN].to_numpy(dtype=float)).any()]
    handles = [Line2D([], [], color=colours[label], linestyle=_line_style(label), marker="o", markersize=3)
               for label in shown]
    figure.legend(handles, _legend_labels(shown), loc="outside lower center", ncols=min(len(shown), 4),
                  fontsize="small")
    figure.suptitle(f"ADA's augmentation probability p during training: mean over {_seed_text(cells)}"
                    f"{_band_text(cells)}")
    return _save(figure, path)


def plot_final(
    cells: pd.DataFrame, metric: RecordedMetric, path: Path, references: pd.DataFrame | None = None
) -> Path:
    """Write :func:`final_figure` to ``path``."""
    return _save(final_figure(cells, metric, references), path)


def final_figure(cells: pd.DataFrame, metric: RecordedMetric, references: pd.DataFrame | None = None) -> Figure:
    """``metric``'s final value per strategy as bars with 95% error bars over ok seeds, one panel per shot count.

    ``scratch`` is the baseline: its bar is hatched and a dashed line marks
    its mean across the panel. Dots are the individual cells; a bar with fewer
    ok cells than cells says how many were ok. Each reference kind of
    ``references`` is a horizontal line at its mean, in its own style.
    """
    cells = with_source_seed(cells)
    title = metric_title(metric, cells)
    strategies = _run_order(cells)
    colours = strategy_colours(strategies)
    shots = sorted(cells["shots"].unique())
    figure = Figure(figsize=(max(7.0, 1.1 * len(strategies) * len(shots) + 1.5), 5.0), layout="constrained")
    axes = figure.subplots(1, len(shots), sharey=True, squeeze=False)[0]
    kinds: set[str] = set()
    for ax, k in zip(axes, shots):
        present = [label for label in strategies if ((cells["shots"] == k) & (cells["strategy"] == label)).any()]
        for x, label in enumerate(present):
            group = cells[(cells["shots"] == k) & (cells["strategy"] == label)]
            ok = group[group["status"] == "ok"]
            finite = ok[np.isfinite(ok[metric.final].to_numpy(dtype=float))]
            values = finite[metric.final].to_numpy(dtype=float)
            mean, _, low, high = nested_mean_interval(finite[metric.final], finite["source_seed"])
            note = f"{len(values)}/{len(group)} ok" if len(values) < len(group) else ""
            if math.isnan(mean):
                ax.text(x, 0, "no ok cell", rotation=90, ha="center", va="bottom", fontsize="small")
                continue
            is_baseline = label == BASELINE
            ax.bar(x, mean, color=colours[label], hatch="//" if is_baseline else None,
                   edgecolor="black" if is_baseline else colours[label], alpha=0.85)
            if not math.isnan(low):
                ax.errorbar(x, mean, yerr=[[mean - low], [high - mean]], color="black", capsize=4, linewidth=1)
            ax.plot(np.full(len(values), x), values, "o", color="black", markersize=3)
            if is_baseline:
                ax.axhline(mean, color="black", linestyle="--", linewidth=1)
            if note:
                ax.annotate(note, (x, max(high if not math.isnan(high) else mean, values.max())),
                            xytext=(0, 3), textcoords="offset points", ha="center", fontsize="small")
        kinds |= _draw_reference_lines(ax, references, k, metric.final)
        ax.set_xticks(range(len(present)), _legend_labels(present), rotation=30, ha="right")
        ax.set_xlim(-0.6, len(present) - 0.4)  # the same slots even where no bar was drawn
        ax.set_title(f"{k} shots")
        ax.grid(axis="y", alpha=0.3)
        if not present:
            _no_data(ax, "no cells")
    axes[0].set_ylabel(f"final {title} ({metric.direction} is better)")
    handles = [Patch(facecolor="white", edgecolor="black", hatch="//"),
               Line2D([], [], color="black", linestyle="--", linewidth=1),
               Line2D([], [], color="black", marker="o", markersize=3, linestyle="")]
    labels = [f"{BASELINE} {BASELINE_ROLE}", f"{BASELINE} mean",
              "one cell" if len(source_checkpoints(cells)) > 1 else "one seed"]
    if cells["seed"].nunique() > 1:
        handles.append(Line2D([], [], color="black", marker="_", markersize=10, linestyle=""))
        labels.append("95% t-interval")
    reference_handles, reference_labels = _reference_legend(kinds)
    figure.legend(handles + reference_handles, labels + reference_labels, loc="outside lower center",
                  ncols=min(len(labels) + len(reference_labels), 4), fontsize="small")
    figure.suptitle(f"Final {title} per strategy: mean over {_seed_text(cells)}, ok cells only")
    return figure


def plot_time(
    cells: pd.DataFrame,
    evals: pd.DataFrame,
    metric: RecordedMetric,
    source_seconds: float | None,
    path: Path,
    sources: int = 1,
) -> Path:
    """Two panels: training seconds per strategy (source pretraining once, apart) and ``metric`` against them.

    The left panel averages ``train_seconds`` over seeds and shot counts; the
    source pretraining bar, when ``source_seconds`` (the total over the
    run's ``sources`` checkpoints) is positive, is grey and stands apart
    because the transfer strategies share the checkpoints.
    The right panel plots ``metric``'s mean over seeds at each evaluation against
    the mean training seconds elapsed by then, at the largest shot count.
    """
    title = metric_title(metric, cells)
    strategies = _run_order(cells)
    colours = strategy_colours(strategies)
    figure = Figure(figsize=(12.0, 4.5), layout="constrained")
    bars_ax, curve_ax = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})

    labels, seconds, bar_colours = [], [], []
    for label in strategies:
        labels.append(_legend_labels([label])[0])
        seconds.append(mean_interval(cells.loc[cells["strategy"] == label, "train_seconds"])[0])
        bar_colours.append(colours[label])
    positions = list(range(len(labels)))
    if source_seconds:
        # one empty slot between the strategies and the shared source bar
        labels.append(SOURCE_LABEL if sources == 1 else f"source pretraining ({sources} checkpoints, shared)")
        seconds.append(float(source_seconds))
        bar_colours.append(SOURCE_COLOUR)
        positions.append(len(strategies) + 1)
    heights = [0.0 if math.isnan(value) else value for value in seconds]
    bars = bars_ax.barh(positions, heights, color=bar_colours)
    if source_seconds:
        bars[-1].set_hatch("..")
        bars[-1].set_edgecolor("black")
    for position, value in zip(positions, seconds):
        text = "n/a" if math.isnan(value) else f"{value:.1f} s"
        bars_ax.annotate(text, (0 if math.isnan(value) else value, position), xytext=(3, 0),
                         textcoords="offset points", va="center", fontsize="small")
    bars_ax.set_yticks(positions, labels)
    bars_ax.invert_yaxis()
    bars_ax.set_xlabel("training seconds per cell (excluding evaluation)")
    bars_ax.set_title("(a) training time: mean over seeds and shots")
    bars_ax.margins(x=0.2)
    bars_ax.grid(axis="x", alpha=0.3)

    shots = sorted(cells["shots"].unique())
    k = shots[-1]
    drawn = False
    for label in strategies:
        subset = evals[(evals["shots"] == k) & (evals["strategy"] == label)]
        curve = curve_over_seeds(subset, x="train_seconds", column=metric.headline)
        if curve.empty:
            continue
        drawn = True
        curve_ax.plot(curve["train_seconds"], curve["mean"], marker="o", markersize=3, color=colours[label],
                      linestyle=_line_style(label), label=_legend_labels([label])[0])
    if drawn:
        curve_ax.legend(fontsize="small")
    else:
        _no_data(curve_ax, "no evaluations")
    which = f"{k} shots (the largest of {', '.join(map(str, shots))})" if len(shots) > 1 else f"{k} shots"
    curve_ax.set_title(f"(b) {title} vs training time, {which}")
    curve_ax.set_xlabel("training seconds (excluding evaluation)")
    curve_ax.set_ylabel(f"{title}, mean over seeds ({metric.direction} is better)")
    curve_ax.grid(alpha=0.3)
    return _save(figure, path)


def sample_panels(results: Results, shots: int, seed: int) -> list[tuple[str, Path]]:
    """The ``(title, PNG)`` panels of :func:`plot_samples` whose files exist, in display order.

    Held-out target images, the real training shots, the reference rows' grids
    (``source model (reference)``, ...), then each cell's samples; a title
    gives the cell's status and its shares (``83% recognised``), and its
    source checkpoint when the run had several.
    """
    results_dir, cells = results.folder, with_source_seed(results.cells)
    shares = [metric for metric in results.metrics if metric.unit == "share" and metric.final in cells]
    nested = len(source_checkpoints(cells)) > 1
    panels = [("held-out target images", results_dir / REFERENCE_GRID),
              (f"{shots} training shots", results_dir / shots_grid(shots, seed))]
    references = results.references
    if not references.empty and {"reference", "samples"} <= set(references.columns):
        chosen = references[(references["shots"] == shots) & (references["seed"] == seed)]
        for _, row in chosen.sort_values("reference", key=lambda kinds: kinds.map(reference_order)).iterrows():
            # copy-shots' grid is the training shots' grid, already shown
            if isinstance(row["samples"], str) and row["samples"] and row["samples"] != shots_grid(shots, seed):
                source = f", source seed {row['source_seed']}" if row["source_seed"] != NO_SOURCE and nested else ""
                panels.append((f"{REFERENCE_TITLES.get(row['reference'], row['reference'])} (reference{source})",
                               results_dir / row["samples"]))
    for _, row in cells[(cells["shots"] == shots) & (cells["seed"] == seed)].iterrows():
        if isinstance(row.get("samples"), str):
            seen = "".join(f", {row[metric.final]:.0%} {metric.title}" for metric in shares
                           if isinstance(row[metric.final], float) and math.isfinite(row[metric.final]))
            source = f" from source seed {row['source_seed']}" if nested and row["source_seed"] != NO_SOURCE else ""
            panels.append((f"{row['strategy']}{source} ({row['status']}{seen})", results_dir / row["samples"]))
    return [(title, file) for title, file in panels if file.is_file()]


def plot_samples(results: Results, shots: int, seed: int, path: Path) -> Path:
    """Side by side: held-out target images, the real training shots, the references' and each strategy's samples.

    Every strategy's grid comes from the same fixed noise of ``seed``; the grids
    are the PNGs the run saved under ``samples/`` (see :func:`sample_panels`).
    Missing files are skipped.
    """
    panels = sample_panels(results, shots, seed)
    columns = min(4, max(1, len(panels)))
    rows = math.ceil(len(panels) / columns) or 1
    figure = Figure(figsize=(3.2 * columns, 3.4 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (title, file) in zip(axes, panels):
        ax.imshow(matplotlib.image.imread(file))
        ax.set_title(textwrap.fill(title, 42), fontsize="small")
    figure.suptitle(f"Final samples, {shots} shots, seed {seed}: the same noise for every strategy")
    return _save(figure, path)


def write_figures(results: Results) -> list[Path]:
    """Write the curves, the final values and the time figure of a results folder into its ``plots/``.

    Returns the paths of ``fd_curves.png``, ``final_fd.png`` and ``time.png``
    (the names say FD because FD is the primary metric of every run so far),
    and of ``ada_p.png`` when a cell recorded ADA's probability.
    """
    metrics = results.metrics
    cells = with_result_columns(results.cells, metrics)
    columns = ["shots", "strategy", "seed", "step", "train_seconds", *(metric.headline for metric in metrics)]
    evals = results.evals.reindex(columns=[*results.evals.columns, *(c for c in columns if c not in results.evals)])
    sources = results.manifest.get("sources") or [results.manifest.get("source") or {}]
    # A shipped source or a file was trained outside every run: the summary says so; no bar here.
    seconds = [source.get("seconds") for source in sources if not source.get("shipped") and not source.get("file")]
    source_seconds = sum(seconds) if seconds and None not in seconds else None
    out = results.folder / "plots"
    out.mkdir(parents=True, exist_ok=True)
    curves, final, time = (out / name for name in PLOT_FILES)
    primary = primary_metric(metrics)
    paths = [
        plot_curves(cells, evals, metrics, curves, results.references),
        plot_final(cells, primary, final, results.references),
        plot_time(cells, evals, primary, source_seconds, time, len(sources)),
    ]
    if ADA_COLUMN in evals and np.isfinite(evals[ADA_COLUMN].to_numpy(dtype=float)).any():
        paths.append(plot_augmentation_probability(cells, evals, out / ADA_PLOT))
    return paths


def reference_levels(references: pd.DataFrame | None, shots: int, column: str) -> dict[str, float]:
    """Each reference kind's mean ``column`` at ``shots`` (over seeds and source seeds), in display order.

    Kinds without a finite value, and folders without references.csv or that
    column, give nothing.
    """
    if references is None or references.empty or column not in references or "reference" not in references:
        return {}
    rows = references[references["shots"] == shots]
    means = pd.to_numeric(rows[column], errors="coerce").groupby(rows["reference"]).mean().dropna()
    return {str(kind): float(means[kind]) for kind in sorted(means.index, key=reference_order)}


def _draw_reference_lines(
    ax: Any, references: pd.DataFrame | None, shots: int, column: str, scale: float = 1.0
) -> set[str]:
    """Draw each reference kind's level as a horizontal line on ``ax``; returns the kinds drawn."""
    levels = reference_levels(references, shots, column)
    for kind, level in levels.items():
        colour, style = REFERENCE_LINES.get(kind, OTHER_REFERENCE_LINE)
        ax.axhline(level * scale, color=colour, linestyle=style, linewidth=1.5)
    return set(levels)


def _reference_legend(kinds: set[str]) -> tuple[list[Line2D], list[str]]:
    """Legend handles and labels for the reference kinds drawn, in display order."""
    ordered = sorted(kinds, key=reference_order)
    handles = [Line2D([], [], color=REFERENCE_LINES.get(kind, OTHER_REFERENCE_LINE)[0],
                      linestyle=REFERENCE_LINES.get(kind, OTHER_REFERENCE_LINE)[1], linewidth=1.5)
               for kind in ordered]
    return handles, [reference_label(kind) for kind in ordered]



def _run_order(cells: pd.DataFrame) -> list[str]:
    return [str(label) for label in pd.unique(cells["strategy"])]


def _line_style(label: str) -> str:
    return "--" if label == BASELINE else "-"


def _legend_labels(strategies: list[str]) -> list[str]:
    return [f"{label} {BASELINE_ROLE}" if label == BASELINE else label for label in strategies]


def _seed_text(cells: pd.DataFrame) -> str:
    seeds, sources = cells["seed"].nunique(), len(source_checkpoints(cells))
    text = f"{seeds} seed{'s' if seeds != 1 else ''}"
    return f"{text} x {sources} source checkpoints" if sources > 1 else text


def _band_text(cells: pd.DataFrame) -> str:
    if len(source_checkpoints(cells)) > 1:
        return ", band = 95% t-interval over the source checkpoints' means"
    return ", band = 95% t-interval" if cells["seed"].nunique() > 1 else ""


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    # no "Software" entry, so the PNG carries no URL and identical figures give identical bytes
    figure.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return path
