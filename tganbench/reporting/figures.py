"""Figures of one run: metric curves over training, final values per strategy, and where the time went.

Every function draws on its own ``matplotlib.figure.Figure`` (no pyplot, so no
display and no global state) and writes one PNG. Means and bands are over
seeds, with the same 95% Student-t interval as the summary table
(:func:`tganbench.reporting.statistics.mean_interval`); non-finite values
(diverged cells) are left out rather than plotted. The curves show every
metric the folder records at every evaluation; the final-value and time
figures show the primary metric (FD today).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tganbench.reporting.statistics import mean_interval
from tganbench.reporting.tables import BASELINE, joined, metric_title, primary_metric, with_result_columns
from tganbench.store import REFERENCE_GRID, RecordedMetric, Results, shots_grid

DPI = 100
SOURCE_LABEL = "source pretraining (once, shared)"
SOURCE_COLOUR = "0.55"
PLOT_FILES = ("fd_curves.png", "final_fd.png", "time.png")


def strategy_colours(strategies: list[str]) -> dict[str, Any]:
    """One colour per strategy label, in run order, so a strategy looks the same in every figure."""
    palette = matplotlib.colormaps["tab10" if len(strategies) <= 10 else "tab20"]
    return {label: palette(index % palette.N) for index, label in enumerate(strategies)}


def curve_over_seeds(evals: pd.DataFrame, x: str = "step", column: str = "fd") -> pd.DataFrame:
    """Aggregate one strategy's evaluations over seeds at each step.

    Returns one row per step (sorted) with ``x`` (its mean over seeds, e.g.
    ``train_seconds``), ``mean``, ``low`` and ``high`` of ``column`` (the FD by
    default; 95% t-interval; NaN bounds where fewer than two seeds have a
    finite value). Steps without any finite value are dropped.
    """
    finite = evals[np.isfinite(evals[column].to_numpy(dtype=float))]
    rows = []
    for step, group in finite.groupby("step", sort=True):
        mean, _, low, high = mean_interval(group[column])
        rows.append({"step": step, x: float(group[x].mean()), "mean": mean, "low": low, "high": high})
    return pd.DataFrame(rows, columns=list(dict.fromkeys(["step", x, "mean", "low", "high"])))


def plot_curves(cells: pd.DataFrame, evals: pd.DataFrame, metrics: list[RecordedMetric], path: Path) -> Path:
    """Metrics over training steps: one row of panels per metric, one panel per shot count, one line per strategy.

    Lines are means over seeds with a 95% band. There is a row for the primary
    metric, and one for every other metric evaluated at every evaluation whose
    evaluations have a finite value; a share is plotted in percent.
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
        rows.append((column, f"{metric_title(metric, cells)}{percent} ({metric.direction} is better)"))
        titles.append(metric_title(metric, cells))
    figure = Figure(figsize=(max(6.0, 4.5 * len(shots) + 2.0), 4.0 * len(rows)), layout="constrained")
    grid = figure.subplots(len(rows), len(shots), sharey="row", sharex="col", squeeze=False)
    for axes, (column, ylabel) in zip(grid, rows):
        _plot_curve_row(axes, cells, evals, column, colours)
        axes[0].set_ylabel(ylabel)
    handles = [Line2D([], [], color=colours[label], linestyle=_line_style(label), marker="o", markersize=3)
               for label in strategies]
    figure.legend(handles, _legend_labels(strategies), loc="outside lower center", ncols=min(len(strategies), 4),
                  fontsize="small")
    figure.suptitle(f"{joined(titles)} during training: mean over {_seed_text(cells)}{_band_text(cells)}")
    return _save(figure, path)


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


def plot_final(cells: pd.DataFrame, metric: RecordedMetric, path: Path) -> Path:
    """``metric``'s final value per strategy as bars with 95% error bars over ok seeds, one panel per shot count.

    ``scratch`` is the reference: its bar is hatched and a dashed line marks
    its mean across the panel. Dots are the individual seeds; a bar with fewer
    ok seeds than cells says how many were ok.
    """
    title = metric_title(metric, cells)
    strategies = _run_order(cells)
    colours = strategy_colours(strategies)
    shots = sorted(cells["shots"].unique())
    figure = Figure(figsize=(max(7.0, 1.1 * len(strategies) * len(shots) + 1.5), 5.0), layout="constrained")
    axes = figure.subplots(1, len(shots), sharey=True, squeeze=False)[0]
    for ax, k in zip(axes, shots):
        present = [label for label in strategies if ((cells["shots"] == k) & (cells["strategy"] == label)).any()]
        for x, label in enumerate(present):
            group = cells[(cells["shots"] == k) & (cells["strategy"] == label)]
            ok = group[group["status"] == "ok"]
            values = ok[metric.final].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            mean, _, low, high = mean_interval(values)
            note = f"{len(values)}/{len(group)} ok" if len(values) < len(group) else ""
            if math.isnan(mean):
                ax.text(x, 0, "no ok cell", rotation=90, ha="center", va="bottom", fontsize="small")
                continue
            is_reference = label == BASELINE
            ax.bar(x, mean, color=colours[label], hatch="//" if is_reference else None,
                   edgecolor="black" if is_reference else colours[label], alpha=0.85)
            if not math.isnan(low):
                ax.errorbar(x, mean, yerr=[[mean - low], [high - mean]], color="black", capsize=4, linewidth=1)
            ax.plot(np.full(len(values), x), values, "o", color="black", markersize=3)
            if is_reference:
                ax.axhline(mean, color="black", linestyle="--", linewidth=1)
            if note:
                ax.annotate(note, (x, max(high if not math.isnan(high) else mean, values.max())),
                            xytext=(0, 3), textcoords="offset points", ha="center", fontsize="small")
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
    labels = [f"{BASELINE} (reference)", f"{BASELINE} mean", "one seed"]
    if cells["seed"].nunique() > 1:
        handles.append(Line2D([], [], color="black", marker="_", markersize=10, linestyle=""))
        labels.append("95% t-interval")
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize="small")
    figure.suptitle(f"Final {title} per strategy: mean over {_seed_text(cells)}, ok cells only")
    return _save(figure, path)


def plot_time(
    cells: pd.DataFrame, evals: pd.DataFrame, metric: RecordedMetric, source_seconds: float | None, path: Path
) -> Path:
    """Two panels: training seconds per strategy (source pretraining once, apart) and ``metric`` against them.

    The left panel averages ``train_seconds`` over seeds and shot counts; the
    source pretraining bar, when ``source_seconds`` is positive, is grey and
    stands apart because every transfer strategy shares the one checkpoint.
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
        labels.append(SOURCE_LABEL)
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


def plot_samples(results: Results, shots: int, seed: int, path: Path) -> Path:
    """Side by side: held-out reference images, the real training shots, then each strategy's samples.

    Every strategy's grid comes from the same fixed noise of ``seed``; the grids
    are the PNGs the run saved under ``samples/``. Missing files are skipped.
    Each title gives the cell's status and its shares (``83% recognised``).
    """
    results_dir, cells = results.folder, results.cells
    shares = [metric for metric in results.metrics if metric.unit == "share" and metric.final in cells]
    cell_rows = cells[(cells["shots"] == shots) & (cells["seed"] == seed)]
    panels = [("held-out reference", results_dir / REFERENCE_GRID),
              (f"{shots} training shots", results_dir / shots_grid(shots, seed))]
    for _, row in cell_rows.iterrows():
        if isinstance(row.get("samples"), str):
            seen = "".join(f", {row[metric.final]:.0%} {metric.title}" for metric in shares
                           if isinstance(row[metric.final], float) and math.isfinite(row[metric.final]))
            panels.append((f"{row['strategy']} ({row['status']}{seen})", results_dir / row["samples"]))
    panels = [(title, file) for title, file in panels if file.is_file()]
    columns = min(4, max(1, len(panels)))
    rows = math.ceil(len(panels) / columns) or 1
    figure = Figure(figsize=(3.2 * columns, 3.4 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (title, file) in zip(axes, panels):
        ax.imshow(matplotlib.image.imread(file))
        ax.set_title(title, fontsize="small")
    figure.suptitle(f"Final samples, {shots} shots, seed {seed}: the same noise for every strategy")
    return _save(figure, path)


def write_figures(results: Results) -> list[Path]:
    """Write the curves, the final values and the time figure of a results folder into its ``plots/``.

    Returns the paths of ``fd_curves.png``, ``final_fd.png`` and ``time.png``
    (the names say FD because FD is the primary metric of every run so far).
    """
    metrics = results.metrics
    cells = with_result_columns(results.cells, metrics)
    columns = ["shots", "strategy", "seed", "step", "train_seconds", *(metric.headline for metric in metrics)]
    evals = results.evals.reindex(columns=[*results.evals.columns, *(c for c in columns if c not in results.evals)])
    source = results.manifest.get("source") or {}
    # A shipped source was trained once, outside every run: the summary gives its time; no bar here.
    source_seconds = None if source.get("shipped") else source.get("seconds")
    out = results.folder / "plots"
    out.mkdir(parents=True, exist_ok=True)
    curves, final, time = (out / name for name in PLOT_FILES)
    primary = primary_metric(metrics)
    return [
        plot_curves(cells, evals, metrics, curves),
        plot_final(cells, primary, final),
        plot_time(cells, evals, primary, source_seconds, time),
    ]


def _run_order(cells: pd.DataFrame) -> list[str]:
    return [str(label) for label in pd.unique(cells["strategy"])]


def _line_style(label: str) -> str:
    return "--" if label == BASELINE else "-"


def _legend_labels(strategies: list[str]) -> list[str]:
    return [f"{label} (reference)" if label == BASELINE else label for label in strategies]


def _seed_text(cells: pd.DataFrame) -> str:
    seeds = cells["seed"].nunique()
    return f"{seeds} seed{'s' if seeds != 1 else ''}"


def _band_text(cells: pd.DataFrame) -> str:
    return ", band = 95% t-interval" if cells["seed"].nunique() > 1 else ""


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    # no "Software" entry, so the PNG carries no URL and identical figures give identical bytes
    figure.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return path
