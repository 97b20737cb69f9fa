"""Everything a results folder shows, rebuilt from its data: summary.md, the figures, sample overviews, report.html.

``tganbench run`` calls :func:`build_report` when it ends and ``tganbench report
DIR`` calls it again on demand, so the artefacts never need a rerun.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tganbench.errors import UsageError
from tganbench.reporting import protocol
from tganbench.reporting.figures import plot_samples, write_figures
from tganbench.reporting.html import write_html
from tganbench.reporting.tables import copying_warnings, format_table, summary_caption, summary_table
from tganbench.store import Results, atomic_write_text, read_results

FIGURE_CAPTIONS = {
    "fd_curves.png": "FD (and, for the embedded pairs, the share of samples recognised as the target shape) "
                     "during training: mean over seeds with a 95% band, one panel per shot count.",
    "final_fd.png": "Final FD per strategy with 95% intervals; scratch is the baseline.",
    "time.png": "Training time per strategy (source pretraining once, apart) and FD against training seconds.",
    "ada_p.png": "ADA's augmentation probability p at each evaluation (the ada_p column of evals.csv): mean over "
                 "seeds with a 95% band, one panel per shot count. p rises while D is sure of the real images "
                 "(r_t, the mean sign of its real logits, above the target, 0.6 by default) and falls otherwise.",
}
# Added to the captions of the figures that draw the reference rows, when the folder has them.
REFERENCE_LINES_NOTE = " Horizontal lines: the reference rows (copy-shots, real, source), not strategies."
FIGURES_WITH_REFERENCES = ("fd_curves.png", "final_fd.png")
# What the summary's protocol paragraph reads from manifest.json.
MANIFEST_KEYS = ("config", "pair_fingerprint", "n_reference", "device", "source")
GRIDS_NOTE = ("Every cell's final samples are in `samples/` (one PNG per shots, seed and strategy, and source "
              "seed when there are several), beside the real shots of each seed, the held-out target images and "
              "the reference rows' samples.")


def build_report(out_dir: Path) -> list[Path]:
    """Write summary.md, the figures, one sample overview per shot count and report.html; returns their paths.

    Raises a one-line UsageError when ``out_dir`` is not a readable results folder.
    """
    results = read_results(out_dir)
    missing = [key for key in MANIFEST_KEYS if key not in results.manifest]
    if missing:
        raise UsageError(f"{results.folder} cannot be reported: its manifest.json lacks {', '.join(missing)} "
                         "(written by an older tganbench, or not by tganbench)")
    folder = results.folder
    figures = write_figures(results)
    seed = int(results.cells["seed"].iloc[0])
    overviews = [
        plot_samples(results, int(shots), seed, folder / "plots" / f"samples-{shots}shots-seed{seed}.png")
        for shots in pd.unique(results.cells["shots"])
    ]
    images = [(_figure_caption(results, path), path) for path in figures]
    images += [
        (f"Final samples, {path.stem.split('-')[1]}, seed {seed}: held-out target images, the real training "
         "shots, the reference rows' samples where saved, and every strategy from the same fixed noise.", path)
        for path in overviews
    ]
    table = _table(results)
    summary_path = folder / "summary.md"
    links = "\n\n".join(f"![{caption}]({path.relative_to(folder).as_posix()})" for caption, path in images)
    atomic_write_text(summary_path, f"{summary_markdown(results, table)}\n## Figures\n\n{links}\n\n{GRIDS_NOTE}\n")
    paragraphs = [_protocol(results), [_caption(results)]]
    html = write_html(folder, _title(results), paragraphs, table, images, _warnings(results))
    return [summary_path, *figures, *overviews, html]


def summary_markdown(results: Results, table: pd.DataFrame | None = None) -> str:
    """The ``summary.md`` page: the protocol in one paragraph, then the caption, any copying warning and the table.

    ``table`` is the summary table when already computed.
    """
    table = _table(results) if table is None else table
    warnings = "".join(f"**{line}**\n\n" for line in _warnings(results))
    return (f"# {_title(results)}\n\n{protocol.markdown(_protocol(results))}\n\n{_caption(results)}\n\n"
            f"{warnings}{format_table(table, markdown=True)}\n")


def _figure_caption(results: Results, path: Path) -> str:
    caption = FIGURE_CAPTIONS.get(path.name, path.stem)
    if path.name in FIGURES_WITH_REFERENCES and not results.references.empty:
        return caption + REFERENCE_LINES_NOTE
    return caption


def _title(results: Results) -> str:
    return f"tganbench results: {results.manifest.get('run_id', results.folder.name)}"


def _target(results: Results) -> float | None:
    """The value time to quality aims for (``--fd-target``); None: scratch's final value."""
    return results.manifest["config"].get("fd_target")


def _caption(results: Results) -> str:
    return summary_caption(results.cells, _target(results), results.metrics, results.manifest.get("split"),
                           results.references)


def _warnings(results: Results) -> list[str]:
    return copying_warnings(results.cells, results.metrics)


def _protocol(results: Results) -> protocol.Pieces:
    return protocol.protocol_paragraph(results.manifest, results.cells, results.metrics)


def _table(results: Results) -> pd.DataFrame:
    return summary_table(results.cells, results.evals, _target(results), results.metrics, results.references)
