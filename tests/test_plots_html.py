"""Figures and the self-contained HTML report, from a synthetic results folder (no training)."""

from __future__ import annotations

import base64
import io
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tganbench.reporting.build import build_report
from tganbench.reporting.figures import curve_over_seeds, plot_time, write_figures
from tganbench.store import LEGACY_METRICS, read_results


STRATEGIES = ["scratch", "finetune", "freeze-d[layers=1]"]
STEPS = [0, 100, 200]
DIVERGED = (100, "finetune", 1)  # (shots, strategy, seed) of the one diverged cell


def make_results(folder: Path, seeds: tuple[int, ...] = (0, 1), shots: tuple[int, ...] = (10, 100)) -> Path:
    """A results folder shaped like a real run's: cells.csv, evals.csv and manifest.json."""
    folder.mkdir(parents=True, exist_ok=True)
    cells, evals = [], []
    for k in shots:
        for index, label in enumerate(STRATEGIES):
            for seed in seeds:
                diverged = (k, label, seed) == DIVERGED
                start = 120.0 if label == "scratch" else 45.0
                final = [60.0, 30.0, 40.0][index] + 3.0 * seed + (10.0 if k == 10 else 0.0)
                curve = [start, (start + final) / 2, math.nan if diverged else final]
                for step, fd in zip(STEPS, curve):
                    evals.append({"pair": "shapes", "shots": k, "strategy": label, "seed": seed, "step": step,
                                  "train_seconds": step * (0.1 + 0.02 * index), "fd": fd,
                                  "kid_mean": fd / 50, "kid_std": 0.01})
                cells.append({
                    "pair": "shapes", "pair_fingerprint": "abc123", "reference_fingerprint": "def456",
                    "shots": k, "shots_fingerprint": f"s{k}-{seed}", "strategy": label,
                    "strategy_name": label.split("[")[0], "params": "{}", "seed": seed,
                    "status": "diverged" if diverged else "ok", "fd_final": curve[-1],
                    "fd_best": np.nanmin(curve), "fd_best_step": STEPS[int(np.nanargmin(curve))],
                    "kid_mean": final / 50, "kid_std": 0.01, "steps": 200,
                    "train_seconds": 200 * (0.1 + 0.02 * index), "eval_seconds": 3.0, "steps_per_second": 8.0,
                    "trainable_params": 1000 - 100 * index, "total_params": 1000, "peak_memory_mb": 50.0,
                    "device": "cpu", "metric": "FD", "extractor": "shapes", "n_generated": 200, "n_reference": 200,
                })
    pd.DataFrame(cells).to_csv(folder / "cells.csv", index=False)
    pd.DataFrame(evals).to_csv(folder / "evals.csv", index=False)
    config = {"pair": "shapes", "shots": list(shots), "seeds": list(seeds), "target_steps": 200, "source_steps": 40,
              "n_generated": 200, "feature_extractor": "shapes", "resolution": 32, "batch_size": 32, "width": 8,
              "fd_target": None}
    manifest = {"run_id": "20260101-000000-shapes", "config": config, "device": "cpu", "pair": "shapes",
                "pair_fingerprint": "abc123", "reference_fingerprint": "def456", "n_reference": 200,
                "source": {"key": "k", "seconds": 12.5, "cached": False},
                "started": "2026-01-01T00:00:00", "finished": "2026-01-01T00:05:00"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def assert_real_png(path: Path) -> None:
    """``path`` decodes as a PNG of a useful size that is not one flat colour."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 200 and image.height > 150
        colours = image.convert("RGB").getcolors(maxcolors=image.width * image.height)
    assert len(colours) > 10


class PageParser(HTMLParser):
    """Collect every start tag with its attributes, and the text inside each tag name."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, list[str]] = {}
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in {"img", "meta", "br"}:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag)]

    def handle_data(self, data: str) -> None:
        for tag in set(self.open):
            self.text.setdefault(tag, []).append(data)

    def names(self) -> list[str]:
        """Every start tag's name, in document order."""
        return [tag for tag, _ in self.tags]


def parse(path: Path) -> tuple[PageParser, str]:
    """Parse an HTML file; return the parser's findings and the raw text."""
    text = path.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser, text


def test_write_figures_makes_three_readable_pngs(tmp_path: Path) -> None:
    folder = make_results(tmp_path / "run")
    paths = write_figures(read_results(folder))
    assert [path.name for path in paths] == ["fd_curves.png", "final_fd.png", "time.png"]
    for path in paths:
        assert path.parent == folder / "plots"
        assert_real_png(path)
    # the PNGs carry no URL in their metadata (matplotlib's default "Software" entry has one)
    assert all(b"http" not in path.read_bytes() for path in paths)


def test_single_seed_has_no_bands_and_still_plots(tmp_path: Path) -> None:
    folder = make_results(tmp_path / "run", seeds=(0,), shots=(100,))
    evals = pd.read_csv(folder / "evals.csv")
    curve = curve_over_seeds(evals[evals["strategy"] == "scratch"])
    assert curve["step"].tolist() == STEPS
    assert curve["low"].isna().all() and curve["high"].isna().all()
    for path in write_figures(read_results(folder)):
        assert_real_png(path)


def test_curve_over_seeds_bands_and_diverged_evaluations(tmp_path: Path) -> None:
    evals = pd.read_csv(make_results(tmp_path / "run") / "evals.csv")
    scratch = curve_over_seeds(evals[(evals["shots"] == 100) & (evals["strategy"] == "scratch")])
    assert scratch["low"].iloc[0] == scratch["high"].iloc[0] == 120.0  # both seeds start from the same FD
    later = scratch.iloc[1:]
    assert (later["low"] < later["mean"]).all() and (later["mean"] < later["high"]).all()
    assert scratch["mean"].iloc[-1] == pytest.approx(61.5)  # seeds 0 and 1: 60 and 63
    # the diverged seed's NaN at step 200 drops out: the last point is seed 0 alone, with no band
    finetune = curve_over_seeds(evals[(evals["shots"] == 100) & (evals["strategy"] == "finetune")],
                                x="train_seconds")
    assert finetune["mean"].iloc[-1] == pytest.approx(30.0)
    assert math.isnan(finetune["low"].iloc[-1])
    assert finetune["train_seconds"].tolist() == pytest.approx([0.0, 12.0, 24.0])


@pytest.mark.parametrize("source_seconds", [None, 0.0, 12.5])
def test_plot_time_with_and_without_source(tmp_path: Path, source_seconds: float | None) -> None:
    folder = make_results(tmp_path / "run", shots=(100,))
    cells, evals = pd.read_csv(folder / "cells.csv"), pd.read_csv(folder / "evals.csv")
    assert_real_png(plot_time(cells, evals, LEGACY_METRICS[0], source_seconds, tmp_path / "time.png"))


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    folder = make_results(tmp_path / "run")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "pair": "<script>alert(1)</script> & friends"}))
    paths = build_report(folder)
    report = folder / "report.html"
    assert paths[-1] == report
    parser, text = parse(report)
    names = parser.names()

    assert "http://" not in text and "https://" not in text
    assert "script" not in names and "link" not in names
    assert "20260101-000000-shapes" in "".join(parser.text["title"])
    assert names.count("h1") == 1
    assert "<code>shapes</code>" in text  # the extractor, as code
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends</code>" in text

    assert names.count("table") == 1
    headers = [cell.strip() for cell in parser.text["th"]]
    assert headers[:3] == ["shots", "strategy", "seeds"] and "FD[shapes] final" in headers
    cells = [cell.strip() for cell in parser.text["td"]]
    assert all(label in cells for label in STRATEGIES)
    assert "30.00" in cells  # finetune at 100 shots: one ok seed of two
    assert "1 diverged" in cells

    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    figures = paths[1:-1]
    assert len(images) == len(figures) == 5  # three figures and one sample overview per shot count
    prefix = "data:image/png;base64,"
    for attrs, path in zip(images, figures):
        assert attrs["src"].startswith(prefix)
        payload = base64.b64decode(attrs["src"][len(prefix):], validate=True)
        assert payload == path.read_bytes()
        with Image.open(io.BytesIO(payload)) as image:
            image.verify()
    captions = [caption.strip() for caption in parser.text["figcaption"]]
    assert captions[1] == "Final FD per strategy with 95% intervals; scratch is the baseline."
    # the page and summary.md show the same table and the same paragraphs
    summary = (folder / "summary.md").read_text()
    assert all(f" {header} " in summary for header in headers)
    assert "".join(parser.text["p"][1].split()) in "".join(summary.split())


def test_report_html_is_written_from_the_data_not_the_markdown(tmp_path: Path) -> None:
    """A summary.md changed by hand does not change report.html: both are made from the CSV files."""
    folder = make_results(tmp_path / "run", seeds=(0,))
    build_report(folder)
    first = (folder / "report.html").read_text()
    assert not list(folder.glob(".*.tmp*"))  # written atomically: no temporary file is left behind
    (folder / "summary.md").write_text("# something else\n\n| a |\n|---|\n| b |\n")
    build_report(folder)
    assert (folder / "report.html").read_text() == first
