"""`tganbench report` and what `run` leaves behind: summary.md, plots, sample grids, a self-contained report.html."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser

from PIL import Image

from conftest import BUILT_INS, run_cli

PLOTS = ["fd_curves.png", "final_fd.png", "time.png", "samples-100shots-seed0.png"]


class _Collector(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _expected_files() -> list[str]:
    grids = ["samples/reference.png", "samples/shots-100-seed0.png"]
    grids += [f"samples/100shots-seed0-{name}.png" for name in BUILT_INS]
    return ["summary.md", "report.html", *(f"plots/{name}" for name in PLOTS), *grids]


def _assert_png(path):
    with Image.open(path) as image:
        image.load()
        assert image.width > 100 and image.height > 60, path
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or range(2)) > 1, f"{path} is one colour"


def test_run_writes_every_report_file(smoke_run):
    out, _ = smoke_run
    for name in _expected_files():
        assert (out / name).is_file(), name
    for png in out.glob("**/*.png"):
        _assert_png(png)
    summary = (out / "summary.md").read_text()
    for name in PLOTS:
        assert f"](plots/{name})" in summary


def test_report_html_is_self_contained(smoke_run):
    out, _ = smoke_run
    text = (out / "report.html").read_text()
    parser = _Collector()
    parser.feed(text)
    tags = [tag for tag, _ in parser.tags]
    assert "table" in tags and "script" not in tags and "link" not in tags
    images = [attrs["src"] for tag, attrs in parser.tags if tag == "img"]
    assert len(images) == len(PLOTS)
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in text and "https://" not in text
    for name in BUILT_INS:
        assert f">{name}<" in text


def test_report_rebuilds_the_artefacts_without_rerunning(smoke_run, tmp_path):
    out, _ = smoke_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "plots")
    (copy / "report.html").unlink()
    (copy / "summary.md").unlink()
    result = run_cli("report", str(copy))
    assert result.code == 0, result.stderr
    for name in _expected_files():
        assert (copy / name).is_file(), name
    assert (copy / "summary.md").read_text() == (out / "summary.md").read_text()


def test_report_on_a_folder_that_is_not_a_results_folder_is_one_line(tmp_path):
    for folder, fragment in [(tmp_path, "is not a tganbench results folder (no cells.csv, evals.csv, manifest.json)"),
                             (tmp_path / "missing", "is not a folder")]:
        result = run_cli("report", str(folder))
        assert result.code == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_quiet_progress_is_plain_lines(tmp_path, monkeypatch):
    from tganbench import progress

    monkeypatch.setattr(progress, "PLAIN_INTERVAL_SECONDS", 0.0)
    result = run_cli("run", "--profile", "smoke", "--strategies", "finetune", "--quiet", "--out", str(tmp_path / "q"))
    assert result.code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("finetune 100 shots seed 0: ")]
    assert lines and "steps/s" in lines[0] and "s left" in lines[0]
    assert "\r" not in result.stderr
