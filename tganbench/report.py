"""Tables people read: cells aggregated over seeds, rendered with pandas and tabulate."""

from __future__ import annotations

from typing import Any

import pandas as pd
from tabulate import tabulate


def summary_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy (in run order): FD, KID and time, mean (and std) over seeds."""
    metric = f"{cells['metric'].iloc[0]}[{cells['extractor'].iloc[0]}]"
    rows = []
    for label, group in cells.groupby("strategy", sort=False):
        ok = group[group["status"] == "ok"]
        row: dict[str, Any] = {"strategy": label, "seeds": len(group)}
        if len(ok) < len(group):
            row["not ok"] = len(group) - len(ok)
        row[f"{metric} final"] = _mean_std(ok["fd_final"], ".2f")
        row[f"{metric} best"] = _mean_std(ok["fd_best"], ".2f")
        row["best step"] = _mean_std(ok["fd_best_step"], ".0f")
        row["KID"] = _mean_std(ok["kid_mean"], ".3g")
        row["train s"] = _mean_std(group["train_seconds"], ".1f")
        row["steps/s"] = _mean_std(group["steps_per_second"], ".1f")
        row["eval s"] = _mean_std(group["eval_seconds"], ".1f")
        row["trainable"] = f"{int(group['trainable_params'].iloc[0]):,} / {int(group['total_params'].iloc[0]):,}"
        rows.append(row)
    if any("not ok" in row for row in rows):
        for row in rows:
            row.setdefault("not ok", "")
    return pd.DataFrame(rows)


def _mean_std(values: pd.Series, spec: str) -> str:
    """``mean`` for one value, ``mean ± std`` for several, empty for none."""
    values = values.dropna()
    if len(values) == 0:
        return ""
    if len(values) == 1:
        return format(values.iloc[0], spec)
    return f"{format(values.mean(), spec)} ± {format(values.std(), spec)}"


def format_table(summary: pd.DataFrame, markdown: bool = False) -> str:
    """Render the summary as a plain-text (terminal) or GitHub-Markdown table."""
    return tabulate(summary, headers="keys", tablefmt="github" if markdown else "simple", showindex=False)


def summary_markdown(cells: pd.DataFrame, manifest: dict[str, Any]) -> str:
    """The ``summary.md`` page: the protocol in one paragraph, then the table."""
    config = manifest["config"]
    metric = cells["metric"].iloc[0]
    protocol = (
        f"Pair `{config['pair']}` (fingerprint `{manifest['pair_fingerprint']}`), {config['shots']} shots, "
        f"seeds {', '.join(map(str, config['seeds']))}, {config['target_steps']} target steps "
        f"(batch {config['batch_size']}, {config['resolution']}x{config['resolution']}, width {config['width']}) "
        f"from one source checkpoint of {config['source_steps']} steps. {metric} and KID use the "
        f"`{config['feature_extractor']}` feature extractor on {config['n_generated']} generated images "
        f"(fixed noise, the same for every strategy) against {manifest['n_reference']} held-out target images. "
        f"Device: {manifest['device']}. Times exclude evaluation; source pretraining took "
        f"{manifest['source']['seconds']:.1f} s{' (cached)' if manifest['source']['cached'] else ''}."
    )
    table = format_table(summary_table(cells), markdown=True)
    return f"# tganbench results: {manifest['run_id']}\n\n{protocol}\n\n{table}\n"
