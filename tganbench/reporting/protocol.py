"""The paragraph above the summary table: what was run, on what, from which source, on which device.

The paragraph is a list of pieces, plain text or :class:`Code`, so that
``summary.md`` (:func:`markdown`) and ``report.html`` (:func:`html`) render the
same data, each in its own format.
"""

from __future__ import annotations

import html as html_text
from typing import Any, Sequence

import pandas as pd

from tganbench.reporting.tables import joined, metric_names
from tganbench.store import RecordedMetric


class Code(str):
    """A piece of text shown as code (a name, a fingerprint, a file)."""


Pieces = list[str]


def markdown(pieces: Sequence[str]) -> str:
    """The pieces as Markdown: code in backticks."""
    return "".join(f"`{piece}`" if isinstance(piece, Code) else piece for piece in pieces)


def html(pieces: Sequence[str]) -> str:
    """The pieces as HTML: every piece escaped, code in ``<code>``."""
    return "".join(f"<code>{html_text.escape(piece)}</code>" if isinstance(piece, Code)
                   else html_text.escape(piece, quote=False) for piece in pieces)


def protocol_paragraph(manifest: dict[str, Any], cells: pd.DataFrame, metrics: Sequence[RecordedMetric]) -> Pieces:
    """Pair, shots, seeds, budget, sources, metrics and extractor, the held-out split, device and time."""
    config = manifest["config"]
    pieces: Pieces = [
        "Pair ", Code(manifest.get("pair", config["pair"])),
        " (content fingerprint ", Code(manifest["pair_fingerprint"]),
        ", reference set ", Code(manifest.get("reference_fingerprint", "")),
        f"), shots {', '.join(map(str, config['shots']))} (nested: for each seed the smaller shot sets are inside "
        f"the larger), seeds {', '.join(map(str, config['seeds']))} (the same for every strategy), "
        f"{config['target_steps']} target steps "
        f"(batch {config['batch_size']}, {config['resolution']}x{config['resolution']}, width {config['width']}) "
        "from ", *_source(manifest), f". {metric_names(cells, metrics, space=False)} use the ",
        Code(config["feature_extractor"]),
        f" feature extractor on {config['n_generated']} generated images "
        f"(fixed noise per seed, the same for every strategy) against {_held_out(manifest)}. "
        f"Device: {manifest['device']}. Times exclude evaluation; {_source_time(manifest)}.",
    ]
    recognition = _recognition(manifest)
    return [*pieces, " ", *recognition] if recognition else pieces


def _held_out(manifest: dict[str, Any]) -> str:
    """The held-out target images, and how the validation / test split uses them when the run had one."""
    split = manifest.get("split")
    if not split:
        return f"{manifest['n_reference']} held-out target images"
    return (f"held-out target images: {split['validation']} validation images choose the best step; "
            f"{split['test']} test images report every value")


def _source(manifest: dict[str, Any]) -> Pieces:
    """Where the source weights came from: one checkpoint, or several each cell is repeated on."""
    source = manifest.get("source") or {}
    shipped, file = source.get("shipped"), source.get("file")
    if file:
        return ["the source checkpoint in ", Code(file["path"]), f" ({file['format']} format, checksum ",
                Code(file["checksum"]), ")"]
    if shipped:
        return ["the source checkpoint shipped with tganbench (", Code(shipped["file"]), ", checksum ",
                Code(shipped["checksum"]), f", {shipped.get('steps', '?')} steps)"]
    seeds = manifest.get("source_seeds") or []
    steps = manifest["config"]["source_steps"]
    if len(seeds) > 1:
        listed = ", ".join(map(str, seeds))
        return [(f"{len(seeds)} source checkpoints of {steps} steps (seeds {listed}), each cell that starts from "
                 "a source repeated on each")]
    return [f"one source checkpoint of {steps} steps"]


def _source_time(manifest: dict[str, Any]) -> str:
    """How long the sources took, and whether this run paid for them."""
    source = manifest["source"]
    if source.get("file"):
        return "this run trained no source (it started from a checkpoint file)"
    if source.get("shipped"):
        return f"this run trained no source (the shipped one took {source['seconds']:.0f} s, once)"
    sources = manifest.get("sources") or [source]
    times = [f"{entry['seconds']:.1f} s{' (cached)' if entry.get('cached') else ''}" for entry in sources]
    return f"source pretraining took {joined(times)}"


def _recognition(manifest: dict[str, Any]) -> Pieces:
    """What the source model's samples show, when the pair's images can be recognised."""
    source = manifest.get("source") or {}
    if "recognised_as_source" not in source:
        return []
    families = manifest.get("families") or ["source", "target"]
    reference = manifest.get("reference_recognised")
    real = f" (held-out real {families[1]} images: {reference:.0%})" if reference is not None else ""
    return [f"The recognition network names {source['recognised_as_source']:.0%} of the source model's samples "
            f"{families[0]} (and {source['recognised_as_target']:.0%} {families[1]}); ", Code("recognised"),
            f" is the share of a model's final samples it names {families[1]}{real}."]
