"""``report.html``: the summary and the figures of one run in a single self-contained page.

The page is built from the same data as ``summary.md`` (the protocol
paragraph's pieces, the caption and the summary table, rendered with
``DataFrame.to_html``), never from the Markdown. It has no scripts and loads
nothing: images are embedded as base64 ``data:`` URIs and the style sheet is
inline, so the file can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import html
import mimetypes
from pathlib import Path
from typing import Sequence

import pandas as pd

from tganbench.reporting import protocol
from tganbench.store import atomic_write_text

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 72rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; background: #f2f2f2; padding: 0 0.2em; }
.table-scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #bbb; padding: 0.3rem 0.6rem; white-space: nowrap; }
th { background: #eee; }
tbody tr:nth-child(even) { background: #f8f8f8; }
figure { margin: 2rem 0; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.95rem; }
.warning { color: #a00000; }
"""


def write_html(
    folder: Path,
    title: str,
    paragraphs: Sequence[protocol.Pieces],
    table: pd.DataFrame,
    figures: Sequence[tuple[str, Path]],
    warnings: Sequence[str] = (),
) -> Path:
    """Write ``folder / "report.html"`` atomically: the title, the paragraphs, the warnings, the table, each figure.

    ``paragraphs`` are lists of pieces (:mod:`tganbench.reporting.protocol`);
    ``warnings`` are sentences shown in bold just above the table;
    ``figures`` are ``(caption, path)`` pairs, each file embedded in the page.
    """
    body = [f"<h1>{html.escape(title)}</h1>"]
    body += [f"<p>{protocol.html(pieces)}</p>" for pieces in paragraphs]
    body += [f'<p class="warning"><strong>{html.escape(line, quote=False)}</strong></p>' for line in warnings]
    body.append(f'<div class="table-scroll">\n{table_html(table)}\n</div>')
    if figures:
        body.append("<h2>Figures</h2>")
        body += [_figure(caption, Path(path)) for caption, path in figures]
    document = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
    path = Path(folder) / "report.html"
    atomic_write_text(path, document)
    return path


def table_html(table: pd.DataFrame) -> str:
    """The table as an HTML ``<table>``, every value escaped, missing values empty."""
    return table.to_html(index=False, border=0, na_rep="", escape=True, classes="summary", justify="left")


def _figure(caption: str, path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    payload = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(caption)
    return (
        f'<figure>\n<img src="data:{mime};base64,{payload}" alt="{alt}">\n'
        f"<figcaption>{html.escape(caption, quote=False)}</figcaption>\n</figure>"
    )
