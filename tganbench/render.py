"""Everything a results folder shows, rebuilt from its CSV files: summary.md, plots, sample overviews, report.html.

``tganbench run`` calls :func:`write_report` when it ends and ``tganbench report
DIR`` calls it again on demand, so the artefacts never need a rerun.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tganbench.errors import UsageError
from tganbench.html_report import write_html_report
from tganbench.plots import plot_samples, write_plots
from tganbench.report import RESULT_COLUMNS, summary_markdown
from tganbench.store import atomic_write_text

RESULT_FILES = ("cells.csv", "evals.csv", "manifest.json")
CELL_COLUMNS = ("pair", "shots", "strategy", "seed", "status", "metric", "extractor", "n_generated")

PLOT_CAPTIONS = {
    "fd_curves.png": "FD (and, for the embedded pairs, the share of samples recognised as the target shape) "
                     "during training: mean over seeds with a 95% band, one panel per shot count.",
    "final_fd.png": "Final FD per strategy with 95% intervals; scratch is the reference.",
    "time.png": "Training time per strategy (source pretraining once, apart) and FD against training seconds.",
}


def load_results(results_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The cells, evaluations and manifest of a results folder; a UsageError if it is not one."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UsageError(f"{results_dir} is not a folder")
    missing = [name for name in RESULT_FILES if not (results_dir / name).is_file()]
    if missing:
        raise UsageError(f"{results_dir} is not a tganbench results folder (no {', '.join(missing)})")
    try:
        cells = pd.read_csv(results_dir / "cells.csv")
        try:
            evals = pd.read_csv(results_dir / "evals.csv")
        except pd.errors.EmptyDataError:
            evals = pd.DataFrame(columns=["pair", "shots", "strategy", "seed", "step", "train_seconds", "fd"])
        manifest = json.loads((results_dir / "manifest.json").read_text())
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise UsageError(f"cannot read the results in {results_dir}: {' '.join(str(error).split())}") from None
    absent = [column for column in CELL_COLUMNS if column not in cells.columns]
    if absent or cells.empty:
        problem = f"cells.csv lacks {', '.join(absent)}" if absent else "cells.csv has no cells"
        raise UsageError(f"{results_dir} is not a complete tganbench results folder ({problem})")
    missing = [column for column in (*RESULT_COLUMNS, "samples") if column not in cells.columns]
    return cells.reindex(columns=[*cells.columns, *missing]), evals, manifest


def write_report(results_dir: Path) -> list[Path]:
    """Write summary.md, the plots, one sample overview per shot count and report.html; returns their paths."""
    results_dir = Path(results_dir)
    cells, evals, manifest = load_results(results_dir)
    plots = write_plots(results_dir)
    seed = int(cells["seed"].iloc[0])
    overviews = [
        plot_samples(results_dir, cells, int(shots), seed, results_dir / "plots" / f"samples-{shots}shots-seed{seed}.png")
        for shots in pd.unique(cells["shots"])
    ]
    summary = summary_markdown(cells, evals, manifest)
    images = [(PLOT_CAPTIONS.get(path.name, path.stem), path) for path in plots]
    images += [
        (f"Final samples, {path.stem.split('-')[1]}, seed {seed}: held-out reference images, the real training "
         "shots, and every strategy from the same fixed noise.", path)
        for path in overviews
    ]
    links = "\n\n".join(f"![{caption}]({path.relative_to(results_dir).as_posix()})" for caption, path in images)
    grids = (
        "Every cell's final samples are in `samples/` (one PNG per shots, seed and strategy), beside the "
        "real shots of each seed and the held-out reference images."
    )
    summary_path = results_dir / "summary.md"
    atomic_write_text(summary_path, f"{summary}\n## Figures\n\n{links}\n\n{grids}\n")
    html = write_html_report(results_dir, summary, images)
    return [summary_path, *plots, *overviews, html]
