"""``report.html``: the summary and the figures of one run in a single self-contained page.

The page has no scripts and loads nothing: images are embedded as base64
``data:`` URIs and the style sheet is inline, so the file can be mailed,
archived or opened offline. The summary's Markdown is the small subset that
:func:`tganbench.report.summary_markdown` writes (headings, paragraphs with
inline code, GitHub pipe tables), converted here without a Markdown library.
"""

from __future__ import annotations

import base64
import html
import json
import mimetypes
import re
from pathlib import Path

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
"""

_SEPARATOR_CELL = re.compile(r"^:?-+:?$")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def write_html_report(results_dir: Path, summary_markdown: str, images: list[tuple[str, Path]]) -> Path:
    """Write ``results_dir / "report.html"``: the run id, the summary, then each image above its caption.

    ``images`` are ``(caption, path)`` pairs; each file is embedded in the page.
    The run id comes from ``manifest.json`` when the folder has one, else it is
    the folder's name.
    """
    results_dir = Path(results_dir)
    title = f"tganbench results: {_run_id(results_dir)}"
    body = markdown_to_html(summary_markdown)
    if not summary_markdown.lstrip().startswith("# "):
        body = f"<h1>{html.escape(title)}</h1>\n{body}"
    figures = [_figure(caption, Path(path)) for caption, path in images]
    if figures:
        body += "\n<h2>Figures</h2>\n" + "\n".join(figures)
    document = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
    path = results_dir / "report.html"
    path.write_text(document, encoding="utf-8")
    return path


def markdown_to_html(text: str) -> str:
    """Convert headings, paragraphs, inline code and GitHub pipe tables to HTML; all text is escaped.

    Blocks are separated by blank lines. A block whose lines all start with
    ``|`` is a table (its second line is the header separator); a line starting
    with ``#`` is a heading; anything else is a paragraph.
    """
    blocks: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(line.startswith("|") for line in lines):
            blocks.append(_table(lines))
            continue
        paragraph: list[str] = []
        for line in lines:
            heading = re.match(r"^(#{1,6})\s+(.*)$", line)
            if heading:
                if paragraph:
                    blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
                    paragraph = []
                level = len(heading.group(1))
                blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            else:
                paragraph.append(line)
        if paragraph:
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
    return "\n".join(blocks)


def _table(lines: list[str]) -> str:
    rows = [_cells(line) for line in lines]
    has_header = len(rows) > 1 and all(_SEPARATOR_CELL.match(cell) for cell in rows[1])
    header, body = (rows[0], rows[2:]) if has_header else ([], rows)
    aligns = [_alignment(cell) for cell in rows[1]] if has_header else []
    out = ['<div class="table-scroll"><table>']
    if header:
        cells = "".join(_cell("th", cell, aligns, i) for i, cell in enumerate(header))
        out.append(f"<thead><tr>{cells}</tr></thead>")
    out.append("<tbody>")
    for row in body:
        cells = "".join(_cell("td", cell, aligns, i) for i, cell in enumerate(row))
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _cells(line: str) -> list[str]:
    line = line.strip()
    line = line.removeprefix("|")
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [cell.strip().replace("\\|", "|") for cell in _UNESCAPED_PIPE.split(line)]


def _alignment(separator: str) -> str:
    if separator.startswith(":") and separator.endswith(":"):
        return "center"
    if separator.endswith(":"):
        return "right"
    return ""  # left, the default


def _cell(tag: str, text: str, aligns: list[str], index: int) -> str:
    align = aligns[index] if index < len(aligns) else ""
    style = f' style="text-align: {align}"' if align else ""
    return f"<{tag}{style}>{_inline(text)}</{tag}>"


def _inline(text: str) -> str:
    """Escape ``text``, then turn ``code`` spans and **bold** into tags."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def _figure(caption: str, path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    payload = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(caption)
    return (
        f'<figure>\n<img src="data:{mime};base64,{payload}" alt="{alt}">\n'
        f"<figcaption>{html.escape(caption, quote=False)}</figcaption>\n</figure>"
    )


def _run_id(results_dir: Path) -> str:
    manifest = results_dir / "manifest.json"
    if manifest.exists():
        try:
            return str(json.loads(manifest.read_text())["run_id"])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged manifest should not stop the report; the folder name still identifies the run
    return results_dir.name
