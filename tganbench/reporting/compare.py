"""``tganbench compare BASELINE CURRENT``: the regression gate on sample quality and time.

Cells are matched by (pair content, shots, strategy with its parameters). The
gated columns follow the metrics the results folders record: each metric's
headline (and, for the metric whose best value is kept, that best value) is
gated in the metric's own direction with the metric's default threshold, as is
the training time (``train_seconds``, lower is better, 50%). A cell regresses
on a column when

* the mean over seeds got worse by more than the threshold
  (``10%`` relative to the baseline, or an absolute ``0.5``), **and**
* the seeds support it: with two or more seeds on both sides, a one-sided
  t-test at the 5% level, paired on the seeds both runs share
  (``scipy.stats.ttest_rel``), or Welch's test when they share fewer than two
  (``scipy.stats.ttest_ind``). With a single seed the threshold alone decides,
  and the table says so.

A unit of the test is one cell: a (seed, source seed) pair, so a run with
several source checkpoints has one unit per seed and checkpoint, paired with
the other run's cell of the same seed and checkpoint. The reference rows of
references.csv are not compared.

A baseline cell that is missing from the current run, or is ``ok`` in the
baseline but not in the current run, is a regression too. Runs whose protocol
differs (extractor, N generated or reference, steps, resolution, ...) are not
compared unless asked to.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from tganbench.errors import UsageError
from tganbench.reporting.tables import primary_metric, source_checkpoints
from tganbench.store import LEGACY_METRICS, RecordedMetric, read_results

SIGNIFICANCE = 0.05
TIME = "train_seconds"
# Names that --max-regression accepted before metrics were recorded; they keep working.
ALIASES = {"time": TIME}
# Protocol entries that may differ between two runs being compared (reported instead).
NOT_PROTOCOL = ("device",)
CELL = ["pair_fingerprint", "shots", "strategy"]
# What the test pairs on within a cell: a seed on one source checkpoint (NO_SOURCE for scratch and older folders).
UNIT = ["seed", "source_seed"]


@dataclass(frozen=True)
class Gate:
    """A cells.csv column compare can gate: how the table names it, its direction, its default threshold."""

    column: str
    label: str
    higher_is_better: bool = False
    default: str | None = None


def gates_for(metrics: list[RecordedMetric]) -> dict[str, Gate]:
    """Every gateable cells.csv column of ``metrics`` plus the training time, in table order.

    A metric's headline gets the metric's threshold by default, as does its
    best value when it keeps one; its other columns are gated only when asked.
    The primary metric (:func:`~tganbench.reporting.tables.primary_metric`) and
    the time it cost come first, then the other metrics in display order.
    """
    gates: dict[str, Gate] = {}
    primary = primary_metric(metrics)
    for metric in sorted(metrics, key=lambda metric: metric is not primary):
        higher = metric.higher_is_better
        for column in metric.columns.values():
            headline = column == metric.final
            label = (f"final {metric.title}" if metric.best else metric.title) if headline else column
            gates[column] = Gate(column, label, higher, metric.threshold if headline else None)
        if metric.best:
            gates[metric.best_column] = Gate(metric.best_column, f"best {metric.title}", higher, metric.threshold)
        if metric is primary:
            gates[TIME] = Gate(TIME, "train s", False, "50%")
    gates.setdefault(TIME, Gate(TIME, "train s", False, "50%"))
    return gates


def gate_names(metrics: list[RecordedMetric]) -> dict[str, str]:
    """What ``--max-regression NAME=...`` accepts: column names, metric names (their headline) and aliases."""
    names = {column: column for column in gates_for(metrics)}
    names.update({metric.name: metric.final for metric in metrics})
    return {**names, **ALIASES}


@dataclass(frozen=True)
class Threshold:
    """How much worse a metric may get: a fraction of the baseline (``relative``) or an absolute amount."""

    metric: str
    limit: float
    relative: bool

    def allowed(self, baseline: float) -> float:
        """The largest increase over ``baseline`` that is not a regression."""
        return self.limit * abs(baseline) if self.relative else self.limit

    def text(self) -> str:
        """``+10%`` or ``+0.5``, as written in the table."""
        return f"+{self.limit * 100:g}%" if self.relative else f"+{self.limit:g}"


def parse_threshold(text: str, metrics: list[RecordedMetric] | None = None) -> Threshold | tuple[str, None]:
    """``fd=10%``, ``train_seconds=25%``, ``kid=0.5`` (absolute) or ``time=off``; a UsageError otherwise.

    Names are those of :func:`gate_names` for ``metrics`` (by default the metrics
    of a folder written before metrics were recorded).
    """
    names = gate_names(list(LEGACY_METRICS) if metrics is None else metrics)
    name, _, value = text.partition("=")
    metric = names.get(name.strip())
    if metric is None or not value:
        raise UsageError(
            f"--max-regression expects METRIC=VALUE with METRIC one of {', '.join(names)} "
            f"and VALUE like 10% or 0.5 or off, got '{text}'"
        )
    value = value.strip()
    if value == "off":
        return metric, None
    try:
        limit = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    except ValueError:
        raise UsageError(f"--max-regression {name}: '{value}' is not a number, a percentage or off") from None
    if not math.isfinite(limit) or limit < 0:
        raise UsageError(f"--max-regression {name}: the threshold must be a non-negative number, got '{value}'")
    return Threshold(metric, limit, value.endswith("%"))


def thresholds_from(options: list[str], metrics: list[RecordedMetric] | None = None) -> dict[str, Threshold]:
    """Each gate's default threshold, overridden by ``--max-regression`` options in order."""
    metrics = list(LEGACY_METRICS) if metrics is None else metrics
    defaults = [f"{column}={gate.default}" for column, gate in gates_for(metrics).items() if gate.default]
    chosen: dict[str, Threshold | None] = {}
    for text in defaults + list(options):
        parsed = parse_threshold(text, metrics)
        if isinstance(parsed, Threshold):
            chosen[parsed.metric] = parsed
        else:
            chosen[parsed[0]] = None
    return {metric: threshold for metric, threshold in chosen.items() if threshold is not None}


def protocol_differences(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``key: baseline -> current`` for every protocol entry that differs (device excluded)."""
    old, new = baseline.get("protocol") or {}, current.get("protocol") or {}
    if not old or not new:
        return ["a results folder has no recorded protocol (written by an older tganbench)"]
    keys = sorted((set(old) | set(new)) - set(NOT_PROTOCOL))
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in keys if old.get(key) != new.get(key)]


def one_sided_p(baseline: pd.Series, current: pd.Series) -> float:
    """p-value of "current is higher than baseline" over seeds; NaN with fewer than two values per side.

    ``baseline`` and ``current`` are indexed by the unit (the seed, or the
    (seed, source seed) pair): units present in both are paired (``ttest_rel``);
    with fewer than two shared units the samples are treated as independent
    (Welch's ``ttest_ind``).
    """
    shared = baseline.index.intersection(current.index)
    if len(shared) >= 2:
        after, before = current.loc[shared], baseline.loc[shared]
        differences = (after - before).to_numpy(dtype=float)
        if np.ptp(differences) == 0:  # no spread: the sign alone decides
            return 0.0 if differences[0] > 0 else 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(stats.ttest_rel(after, before, alternative="greater").pvalue)
    if len(baseline) >= 2 and len(current) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = stats.ttest_ind(current, baseline, equal_var=False, alternative="greater").pvalue
        return float(p) if math.isfinite(p) else (0.0 if current.mean() > baseline.mean() else 1.0)
    return math.nan


@dataclass
class Comparison:
    """The verdict table and what was noticed on the way."""

    rows: pd.DataFrame
    notes: list[str]

    @property
    def regressions(self) -> int:
        """How many (cell, metric) rows regressed."""
        return int(self.rows["verdict"].str.startswith("REGRESSION").sum()) if len(self.rows) else 0

    def markdown(self) -> str:
        """The table (GitHub Markdown) followed by the notes, for a terminal or a CI summary."""
        table = tabulate(self.rows, headers="keys", tablefmt="github", showindex=False)
        notes = "".join(f"- {note}\n" for note in self.notes)
        verdict = (f"**{self.regressions} regression(s)**" if self.regressions else "**No regression.**")
        return f"## tganbench compare\n\n{verdict}\n\n{table}\n\n{notes}"


def compare(
    baseline_dir: Path,
    current_dir: Path,
    max_regression: Sequence[str] = (),
    allow_protocol_change: bool = False,
) -> Comparison:
    """Compare two results folders cell by cell; raises UsageError for bad input or a protocol mismatch.

    ``max_regression`` are ``--max-regression NAME=LIMIT`` options, applied over
    the default thresholds of the metrics the two folders record.
    """
    baseline, current_results = read_results(baseline_dir), read_results(current_dir)
    metrics = _compared_metrics(baseline.metrics, current_results.metrics)
    gates = gates_for(metrics)
    thresholds = thresholds_from(list(max_regression), metrics)
    base_cells, base_manifest = baseline.cells, baseline.manifest
    cur_cells, cur_manifest = current_results.cells, current_results.manifest
    notes = [f"baseline `{baseline_dir}`, current `{current_dir}`"]
    differences = protocol_differences(base_manifest, cur_manifest)
    if differences and not allow_protocol_change:
        raise UsageError(
            f"refusing to compare runs with different protocols ({'; '.join(differences[:4])}); "
            "pass --allow-protocol-change to compare anyway"
        )
    if differences:
        notes.append("protocol differs (compared anyway): " + "; ".join(differences))
    if base_manifest.get("device") != cur_manifest.get("device"):
        notes.append(f"devices differ ({base_manifest.get('device')} vs {cur_manifest.get('device')}): "
                     "time changes compare two machines")

    base_groups = dict(list(base_cells.groupby(CELL, sort=False)))
    cur_groups = dict(list(cur_cells.groupby(CELL, sort=False)))
    if not set(base_groups) & set(cur_groups):
        raise UsageError(f"{baseline_dir} and {current_dir} have no cell in common (pair, shots, strategy)")

    rows: list[dict[str, Any]] = []
    single_seed = False
    for key, base in base_groups.items():
        label = {"shots": key[1], "strategy": key[2]}
        current = cur_groups.get(key)
        if current is None:
            rows.append({**label, "metric": "cell", "verdict": "REGRESSION: missing from the current run"})
            continue
        base_ok, cur_ok = _ok(base), _ok(current)
        if len(cur_ok) < len(current) and len(base_ok) == len(base):
            counts = current.loc[current["status"] != "ok", "status"].value_counts()
            statuses = ", ".join(f"{count} {status}" for status, count in counts.items())
            rows.append({**label, "metric": "status", "verdict": f"REGRESSION: {statuses} (baseline: all ok)"})
        for column, gate in gates.items():
            threshold = thresholds.get(column)
            if threshold is None or column not in base.columns or column not in current.columns:
                continue
            b = base_ok.set_index(UNIT)[column].dropna()
            c = cur_ok.set_index(UNIT)[column].dropna()
            if b.empty or c.empty:
                continue
            single_seed |= min(len(b), len(c)) < 2
            rows.append({**label, "metric": gate.label,
                         **_verdict(b, c, threshold, higher_is_better=gate.higher_is_better)})
    for key in cur_groups.keys() - base_groups.keys():
        rows.append({"shots": key[1], "strategy": key[2], "metric": "cell", "verdict": "new (not in the baseline)"})
    if single_seed:
        notes.append("cells with a single seed: the threshold alone decides (no test is possible)")
    if any(len(source_checkpoints(cells)) > 1 for cells in (base_cells, cur_cells)):
        notes.append("several source checkpoints: each (seed, source seed) is one unit, paired on both")
    if not baseline.references.empty or not current_results.references.empty:
        notes.append("references.csv (the copy-shots, real and source rows) is not compared")
    notes.append(f"regression = worse by more than the threshold and, with 2+ seeds, a one-sided t-test "
                 f"p < {SIGNIFICANCE} (paired on shared seeds)")
    columns = ["shots", "strategy", "metric", "baseline", "current", "change", "threshold", "seeds", "p", "verdict"]
    return Comparison(pd.DataFrame(rows).reindex(columns=columns).fillna(""), notes)


def _compared_metrics(baseline: Sequence[RecordedMetric], current: Sequence[RecordedMetric]) -> list[RecordedMetric]:
    """The metrics of the baseline, then those only the current run records, then the legacy ones.

    Legacy names stay accepted by ``--max-regression`` even where a folder does
    not hold them; a column neither folder has is skipped.
    """
    chosen: dict[str, RecordedMetric] = {}
    for metric in [*baseline, *current, *LEGACY_METRICS]:
        chosen.setdefault(metric.name, metric)
    return list(chosen.values())


def _ok(cells: pd.DataFrame) -> pd.DataFrame:
    return cells[cells["status"] == "ok"]


def _verdict(
    baseline: pd.Series, current: pd.Series, threshold: Threshold, higher_is_better: bool = False
) -> dict[str, Any]:
    """One table row's figures and verdict for one metric of one cell."""
    b, c = float(baseline.mean()), float(current.mean())
    change = c - b
    relative = f" ({change / abs(b):+.1%})" if b else ""
    # How much worse, in the metric's own direction; the test asks whether the current run is worse.
    worsening = -change if higher_is_better else change
    p = one_sided_p(current, baseline) if higher_is_better else one_sided_p(baseline, current)
    worse = worsening > threshold.allowed(b)
    if not worse:
        verdict = "improved" if -worsening > threshold.allowed(b) else "ok"
    elif math.isnan(p):
        verdict = "REGRESSION (1 seed: threshold only)"
    elif p < SIGNIFICANCE:
        verdict = "REGRESSION"
    else:
        verdict = "within seed noise"
    return {
        "baseline": _mean_std(baseline),
        "current": _mean_std(current),
        "change": f"{change:+.3g}{relative}",
        "threshold": threshold.text().replace("+", "-") if higher_is_better else threshold.text(),
        "seeds": f"{len(baseline)} / {len(current)}",
        "p": "" if math.isnan(p) else f"{p:.3f}",
        "verdict": verdict,
    }


def _mean_std(values: pd.Series) -> str:
    if len(values) < 2:
        return f"{values.mean():.4g}"
    return f"{values.mean():.4g} ± {values.std():.2g}"
