"""Verdicts a reviewer can trust: reference rows, the validation-chosen best, source variance, copying warnings.

The folders are written by hand in the layout a run with ``--source-seeds 2``
writes (no training): cells nest within two source checkpoints (scratch has
none), the best FD is chosen on validation images, references.csv holds the
copy-shots, real and source rows, and ``finetune`` copies its shots.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image
from scipy import stats

from conftest import run_cli
from test_plots_html import make_results as make_legacy_results
from test_plots_html import parse
from tganbench.reporting.build import build_report
from tganbench.reporting.compare import compare
from tganbench.reporting.figures import curves_figure, final_figure, reference_levels, sample_panels
from tganbench.reporting.protocol import markdown, protocol_paragraph
from tganbench.reporting.statistics import (
    mean_interval,
    nested_mean_interval,
    nested_paired_difference,
    paired_difference,
)
from tganbench.reporting.tables import (
    compact_caption,
    compact_table,
    compact_warnings,
    copying_warnings,
    summary_caption,
    summary_table,
)
from tganbench.store import LEGACY_METRICS, RecordedMetric, read_results

# Student t quantiles t(0.975; df), from printed tables.
T_975 = {1: 12.7062, 2: 4.3027}
STRATEGIES = ["scratch", "finetune", "freeze-d"]
SEEDS, SOURCE_SEEDS, SHOTS, STEPS = (0, 1), (0, 1), 10, (0, 100, 200)
# Final test FD of each cell: (strategy, seed, source seed) -> value; scratch has no source (-1).
FINAL_FD = {
    ("scratch", 0, -1): 50.0, ("scratch", 1, -1): 40.0,
    ("finetune", 0, 0): 30.0, ("finetune", 1, 0): 24.0, ("finetune", 0, 1): 36.0, ("finetune", 1, 1): 30.0,
    ("freeze-d", 0, 0): 35.0, ("freeze-d", 1, 0): 33.0, ("freeze-d", 0, 1): 39.0, ("freeze-d", 1, 1): 37.0,
}
# C_T of each strategy's cells: finetune copies its shots (below -3), freeze-d and scratch do not.
COPYING = {"scratch": 0.5, "finetune": -10.0, "freeze-d": -1.0}
REFERENCES = {"copy-shots": {"fd_final": 5.0, "recognised": 1.0, "copying": -20.0},
              "real": {"fd_final": 2.0, "recognised": 0.98, "copying": 0.2},
              "source": {"fd_final": 90.0, "recognised": 0.05, "copying": 1.5}}
METRICS = [
    {"name": "fd", "title": "FD", "direction": "lower", "every_evaluation": True,
     "columns": {"fd": "fd_final", "fd_val": "fd_val_final"}, "best": True, "select_by": "fd_val",
     "threshold": "10%", "unit": "number", "description": "Fréchet distance"},
    asdict(LEGACY_METRICS[1]),
    {**asdict(LEGACY_METRICS[2])},
    {"name": "precision", "title": "precision", "direction": "higher", "every_evaluation": False,
     "columns": {"precision": "precision"}, "unit": "share", "description": "% of samples near real images"},
    {"name": "recall", "title": "recall", "direction": "higher", "every_evaluation": False,
     "columns": {"recall": "recall"}, "unit": "share", "description": "% of real images near samples"},
    {"name": "copying", "title": "copying", "direction": "higher", "every_evaluation": False,
     "columns": {"copying": "copying"}, "unit": "number", "description": "data-copying statistic C_T"},
    {"name": "diversity", "title": "diversity", "direction": "higher", "every_evaluation": False,
     "columns": {"diversity": "diversity"}, "unit": "number", "description": "intra-cluster feature distance"},
]


def metric_records() -> list[RecordedMetric]:
    """The metrics of the synthetic folders, as ``read_results`` reads them."""
    return [RecordedMetric.from_record(record) for record in METRICS]


def make_results(folder: Path, source_seeds: tuple[int, ...] = SOURCE_SEEDS, split: bool = True,
                 references: bool = True, scale: dict[str, float] | None = None) -> Path:
    """A results folder of the new layout; ``scale[strategy]`` multiplies that strategy's FD."""
    folder.mkdir(parents=True)
    scale = scale or {}
    cells, evals, rows = [], [], []
    for (label, seed, source), fd in FINAL_FD.items():
        if source not in (-1, *source_seeds):
            continue
        fd *= scale.get(label, 1.0)
        curve = [fd + 40.0, fd - 2.0, fd]  # the oracle minimum is at step 100
        validation = [fd + 41.0, fd + 1.5, fd + 1.0]  # validation prefers the last step
        for step, test, val in zip(STEPS, curve, validation):
            evals.append({"pair": "shapes", "shots": SHOTS, "strategy": label, "seed": seed, "source_seed": source,
                          "step": step, "train_seconds": step * 0.1, "fd": test, "fd_val": val,
                          "recognised": 0.5, "recognised_source": 0.1})
        cells.append({
            "pair": "shapes", "pair_fingerprint": "abc123", "shots": SHOTS, "strategy": label, "seed": seed,
            "source_seed": source, "status": "ok", "fd_final": fd, "fd_val_final": fd + 1.0, "fd_best": fd,
            "fd_best_step": 200, "fd_oracle_best": fd - 2.0, "kid_mean": fd / 50, "kid_std": 0.01,
            "recognised": 0.5, "recognised_source": 0.1, "precision": 0.8, "recall": 0.4,
            "copying": COPYING[label], "diversity": 0.3, "steps": 200, "train_seconds": 20.0,
            "eval_seconds": 1.0, "steps_per_second": 10.0, "trainable_params": 100, "total_params": 100,
            "metric": "FD", "extractor": "shapes", "n_generated": 200, "n_reference": 200,
        })
    for seed in SEEDS:
        for kind, values in REFERENCES.items():
            for source in (source_seeds if kind == "source" else (-1,)):
                samples = f"samples/{SHOTS}shots-seed{seed}-source{source}-{kind}.png" if kind != "real" else ""
                rows.append({"pair": "shapes", "shots": SHOTS, "seed": seed, "source_seed": source,
                             "reference": kind, "n_images": 200, "samples": samples, "fd_val_final": 1.0,
                             "kid_mean": 0.01, "kid_std": 0.001, "recognised_source": 0.0, "precision": 0.9,
                             "recall": 0.9, "diversity": 0.5, **values})
    pd.DataFrame(cells).to_csv(folder / "cells.csv", index=False)
    pd.DataFrame(evals).to_csv(folder / "evals.csv", index=False)
    if references:
        pd.DataFrame(rows).to_csv(folder / "references.csv", index=False)
    config = {"pair": "shapes", "shots": [SHOTS], "seeds": list(SEEDS), "target_steps": 200, "source_steps": 40,
              "n_generated": 200, "feature_extractor": "shapes", "resolution": 32, "batch_size": 32, "width": 8,
              "fd_target": None}
    sources = [{"seed": seed, "key": f"k{seed}", "seconds": 12.5, "cached": seed == 1, "shipped": None}
               for seed in source_seeds]
    manifest = {"run_id": folder.name, "config": config, "device": "cpu", "pair": "shapes",
                "pair_fingerprint": "abc123", "reference_fingerprint": "def456", "n_reference": 200,
                "source": sources[0], "sources": sources, "source_seeds": list(source_seeds),
                "metrics": METRICS, "protocol": {"target_steps": 200}}
    if split:
        manifest["split"] = {"validation": 100, "test": 200}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _table(folder: Path) -> pd.DataFrame:
    results = read_results(folder)
    return summary_table(results.cells, results.evals, None, results.metrics, results.references)


# -- statistics ------------------------------------------------------------------------------------------------------

def test_the_nested_interval_is_the_t_interval_over_the_group_means():
    # Three checkpoints, two seeds each: group means 11, 21, 31 (mean 21, std 10).
    values, groups = [10, 12, 20, 22, 30, 32], [0, 0, 1, 1, 2, 2]
    mean, std, low, high = nested_mean_interval(values, groups)
    half_width = T_975[2] * 10 / math.sqrt(3)
    assert mean == pytest.approx(21)
    assert low == pytest.approx(21 - half_width, abs=1e-3) and high == pytest.approx(21 + half_width, abs=1e-3)
    assert std == pytest.approx(np.std(values, ddof=1))  # the ± stays the spread of the cells
    # pooling the six cells as if independent would claim a much narrower interval
    assert high - low > mean_interval(values)[3] - mean_interval(values)[2]
    # one checkpoint: the plain t-interval over seeds
    assert nested_mean_interval(values, [7] * 6) == mean_interval(values)


def test_the_nested_paired_difference_averages_within_checkpoints_first():
    values, baseline, groups = [30, 24, 36, 30], [50, 40, 50, 40], [0, 0, 1, 1]
    # differences -20, -16 | -14, -10: checkpoint means -18 and -12, mean -15, std sqrt(18)
    mean, low, high = nested_paired_difference(values, baseline, groups)
    half_width = T_975[1] * math.sqrt(18) / math.sqrt(2)
    assert mean == pytest.approx(-15)
    assert (low, high) == (pytest.approx(-15 - half_width, abs=1e-3), pytest.approx(-15 + half_width, abs=1e-3))
    assert nested_paired_difference(values, baseline, [0] * 4) == paired_difference(values, baseline)


# -- the summary table -----------------------------------------------------------------------------------------------

def test_each_cell_pairs_with_scratch_of_the_same_seed_across_checkpoints(tmp_path):
    table = _table(make_results(tmp_path / "run")).set_index("strategy")
    half_width = T_975[1] * math.sqrt(18) / math.sqrt(2)  # as in the hand-computed nested example
    expected = f"-15.00 [{-15 - half_width:+.2f}, {-15 + half_width:+.2f}]"
    assert table.loc["finetune", "Δ vs scratch [95% CI]"] == expected
    assert table.loc["scratch", "Δ vs scratch [95% CI]"] == "(baseline)"
    assert table.loc["finetune", "seeds"] == "2 x 2 sources" and table.loc["scratch", "seeds"] == 2
    # the interval of the mean is over the two checkpoints' means (27 and 33)
    assert table.loc["finetune", "95% CI"] == f"[{30 - T_975[1] * 3:.2f}, {30 + T_975[1] * 3:.2f}]"


def test_one_source_checkpoint_keeps_the_interval_over_seeds(tmp_path):
    table = _table(make_results(tmp_path / "run", source_seeds=(0,))).set_index("strategy")
    _, _, low, high = mean_interval([30.0, 24.0])
    assert table.loc["finetune", "95% CI"] == f"[{low:.2f}, {high:.2f}]"
    assert table.loc["finetune", "seeds"] == 2
    mean, low, high = paired_difference([30.0, 24.0], [50.0, 40.0])
    assert table.loc["finetune", "Δ vs scratch [95% CI]"] == f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def test_reference_rows_follow_the_strategies_and_carry_only_metrics(tmp_path):
    table = _table(make_results(tmp_path / "run"))
    labels = table["strategy"].tolist()
    assert labels == [*STRATEGIES, "copy-shots (reference)", "real (reference)", "source (reference)"]
    references = table.set_index("strategy").loc[["copy-shots (reference)", "real (reference)", "source (reference)"]]
    assert references["FD[shapes] final"].tolist() == ["5.00 ± 0.00", "2.00 ± 0.00", "90.00 ± 0.00"]
    assert references.loc["source (reference)", "seeds"] == "2 x 2 sources"
    for column in ("Δ vs scratch [95% CI]", "95% CI", "FD[shapes] best", "to target", "train s", "trainable"):
        assert (references[column] == "").all(), column
    assert references.loc["copy-shots (reference)", "recognised"] == "100 ± 0"
    # no reference row without references.csv
    assert len(_table(make_results(tmp_path / "bare", references=False))) == len(STRATEGIES)


def test_the_oracle_best_is_in_summary_md_but_not_on_the_terminal(tmp_path):
    folder = make_results(tmp_path / "run")
    table = _table(folder).set_index("strategy")
    assert table.loc["finetune", "FD[shapes] best"] == "30.00 ± 4.90"  # the validation-chosen test FD
    assert table.loc["finetune", "FD[shapes] oracle min"] == "28.00 ± 4.90"
    results = read_results(folder)
    terminal = compact_table(_table(folder))
    assert "oracle" not in terminal and "best" not in terminal.splitlines()[0]
    assert max(len(line) for line in terminal.splitlines()) <= 120
    assert "copy-shots (reference)" in terminal and "(baseline)" not in terminal  # no Δ column on the terminal
    caption = compact_caption(results.cells, results.metrics, references=results.references)
    assert "Rows marked (reference) are images" in caption
    build_report(folder)
    summary = (folder / "summary.md").read_text()
    assert "FD[shapes] oracle min" in summary


def test_a_strategy_copying_in_some_cells_is_warned_with_both_means(tmp_path):
    results = read_results(make_results(tmp_path / "run"))
    cells = results.cells.copy()
    freeze_d = cells.index[cells["strategy"] == "freeze-d"]
    cells.loc[freeze_d, "copying"] = -1.0
    cells.loc[freeze_d[0], "copying"] = -9.0  # one copying cell among several that do not copy
    warning = next(w for w in copying_warnings(cells, results.metrics) if "freeze-d" in w)
    mean_all = cells.loc[freeze_d, "copying"].mean()
    assert f"C_T below -3 in 1 of its {len(freeze_d)} cells (mean -9.0 over those, {mean_all:.1f} over all)" in warning


def test_copying_is_flagged_for_strategies_never_for_reference_rows(tmp_path):
    folder = make_results(tmp_path / "run")
    results = read_results(folder)
    warnings = copying_warnings(results.cells, results.metrics)
    assert len(warnings) == 1
    assert warnings[0].startswith("COPYING: finetune at 10 shots has C_T = -10.0")
    assert "reproduces its training images" in warnings[0] and "FD and KID reward that" in warnings[0]
    table = _table(folder).set_index("strategy")
    assert table.loc["finetune", "copying"] == "-10 ± 0 COPYING"
    assert table.loc["freeze-d", "copying"] == "-1 ± 0"  # C_T = -1: not copying
    assert table.loc["copy-shots (reference)", "copying"] == "-20 ± 0"  # shown, never flagged
    assert "finetune" in compact_warnings(results.cells, results.metrics)
    terminal = compact_table(_table(folder))
    assert "-10 ± 0 COPYING" in terminal and "-20 ± 0 COPYING" not in terminal

    build_report(folder)
    summary = (folder / "summary.md").read_text()
    warning_at = summary.index("**COPYING: finetune at 10 shots")
    assert warning_at < summary.index("|   shots")  # above the table
    assert summary.count("**COPYING:") == 1
    parser, text = parse(folder / "report.html")
    assert any("COPYING: finetune at 10 shots" in piece for piece in parser.text["strong"])
    assert text.index("COPYING: finetune") < text.index("<table")


def test_no_copying_warning_when_no_cell_copies(tmp_path):
    folder = make_results(tmp_path / "run")
    cells = pd.read_csv(folder / "cells.csv")
    cells["copying"] = -1.0
    cells.to_csv(folder / "cells.csv", index=False)
    results = read_results(folder)
    assert copying_warnings(results.cells, results.metrics) == []
    assert compact_warnings(results.cells, results.metrics) == ""
    build_report(folder)
    assert "**COPYING" not in (folder / "summary.md").read_text()


# -- captions and the protocol paragraph -----------------------------------------------------------------------------

def test_the_caption_says_which_variance_the_intervals_cover_and_how_best_was_chosen(tmp_path):
    two = read_results(make_results(tmp_path / "two"))
    caption = summary_caption(two.cells, None, two.metrics, two.manifest["split"], two.references)
    assert "95% t-interval over the 2 source checkpoints' means (covers source and seed variance)" in caption
    assert "mean ± std over 2 seeds x 2 source checkpoints" in caption
    assert ("best = test FD at the evaluation with the lowest validation FD (100 validation / 200 test held-out "
            "images)") in caption
    assert "copy-shots = the training shots themselves" in caption

    one = read_results(make_results(tmp_path / "one", source_seeds=(0,), split=False, references=False))
    caption = summary_caption(one.cells, None, one.metrics, one.manifest.get("split"), one.references)
    assert "95% t-interval over seeds, conditional on one source checkpoint (source variance not covered)" in caption
    assert "best = test FD at the evaluation with the lowest validation FD;" in caption  # no sizes without a split
    assert "(reference)" not in caption

    legacy = read_results(make_legacy_results(tmp_path / "legacy"))
    caption = summary_caption(legacy.cells, None, legacy.metrics, legacy.manifest.get("split"), legacy.references)
    assert "best = lowest FD over evaluations" in caption and "validation" not in caption
    assert "conditional on one source checkpoint" in caption


def test_the_protocol_names_the_split_and_the_source_checkpoints(tmp_path):
    results = read_results(make_results(tmp_path / "two"))
    text = markdown(protocol_paragraph(results.manifest, results.cells, results.metrics))
    assert "100 validation images choose the best step; 200 test images report every value" in text
    assert "2 source checkpoints of 40 steps (seeds 0, 1), each cell that starts from a source repeated on each" in text
    assert "source pretraining took 12.5 s and 12.5 s (cached)" in text
    legacy = read_results(make_legacy_results(tmp_path / "legacy"))
    text = markdown(protocol_paragraph(legacy.manifest, legacy.cells, legacy.metrics))
    assert "against 200 held-out target images" in text and "one source checkpoint of 40 steps" in text


# -- figures ---------------------------------------------------------------------------------------------------------

def _legend(figure: Figure) -> list[str]:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def _horizontal_levels(ax) -> list[float]:
    return sorted(line.get_ydata()[0] for line in ax.get_lines()
                  if len(set(line.get_ydata())) == 1 and list(line.get_xdata()) == [0, 1])


def test_final_fd_draws_references_as_lines_not_bars(tmp_path):
    results = read_results(make_results(tmp_path / "run"))
    fd = results.metrics[0]
    figure = final_figure(results.cells, fd, results.references)
    legend = _legend(figure)
    assert {"copy-shots (reference)", "real (reference)", "source (reference)", "scratch (baseline)"} <= set(legend)
    ax = figure.axes[0]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["scratch (baseline)", "finetune", "freeze-d"]
    assert len(ax.patches) == len(STRATEGIES)  # one bar per strategy, none for a reference
    assert _horizontal_levels(ax) == pytest.approx(sorted([2.0, 5.0, 90.0, 45.0]))  # and scratch's mean
    styles = {line.get_linestyle() for line in ax.get_lines() if line.get_ydata()[0] in (2.0, 5.0, 90.0)}
    assert len(styles) == 3
    assert not any("reference" in text for text in _legend(final_figure(results.cells, fd)))


def test_curves_draw_the_reference_lines_in_the_fd_and_recognised_panels(tmp_path):
    results = read_results(make_results(tmp_path / "run"))
    figure = curves_figure(results.cells, results.evals, results.metrics, results.references)
    assert "source (reference)" in _legend(figure) and "scratch (baseline)" in _legend(figure)
    fd_ax, recognised_ax = figure.axes
    assert _horizontal_levels(fd_ax) == pytest.approx([2.0, 5.0, 90.0])
    assert _horizontal_levels(recognised_ax) == pytest.approx([5.0, 98.0, 100.0])  # percent
    assert reference_levels(results.references, SHOTS, "fd_final") == {"copy-shots": 5.0, "real": 2.0, "source": 90.0}
    assert reference_levels(results.references, 99, "fd_final") == {}


def test_the_curve_band_covers_the_source_checkpoints(tmp_path):
    from tganbench.reporting.figures import curve_over_seeds

    evals = read_results(make_results(tmp_path / "run")).evals
    curve = curve_over_seeds(evals[evals["strategy"] == "finetune"])
    last = curve.iloc[-1]
    # final FDs 30, 24 (source 0) and 36, 30 (source 1): checkpoint means 27 and 33
    assert last["mean"] == pytest.approx(30.0)
    assert last["high"] - last["mean"] == pytest.approx(T_975[1] * 3, abs=1e-3)


def test_sample_overview_shows_the_reference_grids_that_exist(tmp_path):
    folder = make_results(tmp_path / "run")
    (folder / "samples").mkdir()
    for name in ("10shots-seed0-source0-source.png", "10shots-seed0-source-1-copy-shots.png",
                 "10shots-seed0-source1-source.png"):
        Image.new("RGB", (16, 16), "white").save(folder / "samples" / name)
    titles = [title for title, _ in sample_panels(read_results(folder), SHOTS, 0)]
    assert titles == ["copied shots (reference)", "source model (reference, source seed 0)",
                      "source model (reference, source seed 1)"]


def test_write_figures_and_the_report_on_the_new_layout(tmp_path):
    folder = make_results(tmp_path / "run")
    paths = build_report(folder)
    assert all(path.is_file() for path in paths)
    parser, _ = parse(folder / "report.html")
    captions = [caption.strip() for caption in parser.text["figcaption"]]
    assert "Horizontal lines: the reference rows" in captions[1]


# -- compare ---------------------------------------------------------------------------------------------------------

def test_compare_pairs_cells_on_seed_and_source_seed(tmp_path):
    base = make_results(tmp_path / "base")
    worse = make_results(tmp_path / "worse", scale={"finetune": 1.15})
    # the current run wrote its cells in another order: only the (seed, source seed) key pairs them right
    cells = pd.read_csv(worse / "cells.csv")
    cells.iloc[::-1].to_csv(worse / "cells.csv", index=False)
    comparison = compare(base, worse)
    rows = comparison.rows[(comparison.rows["strategy"] == "finetune") & (comparison.rows["metric"] == "final FD")]
    (row,) = rows.to_dict("records")
    assert row["seeds"] == "4 / 4"  # two seeds on each of two checkpoints: four units
    before = pd.Series([FINAL_FD[("finetune", seed, source)] for seed, source in [(0, 0), (1, 0), (0, 1), (1, 1)]])
    expected = stats.ttest_rel(before * 1.15, before, alternative="greater").pvalue
    assert row["p"] == f"{expected:.3f}" and row["verdict"] == "REGRESSION"
    assert any("(seed, source seed) is one unit" in note for note in comparison.notes)
    assert any("references.csv" in note and "not compared" in note for note in comparison.notes)
    assert not any("reference" in str(label) for label in comparison.rows["strategy"])
    # precision, recall, copying and diversity have no threshold in their records: not gated by default
    assert not set(comparison.rows["metric"]) & {"precision", "recall", "copying", "diversity"}
    assert run_cli("compare", str(base), str(base)).code == 0
