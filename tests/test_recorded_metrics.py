"""A metric recorded in manifest.json shows everywhere (summary, report.html, curves, compare), in its direction.

The folders are written by hand (no training): the synthetic run of
test_plots_html, plus a plugin metric ``sharpness`` (higher is better, gated
at 5%) in cells.csv, evals.csv and the manifest's metric records.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from PIL import Image

from conftest import run_cli
from test_plots_html import make_results, parse
from tganbench.reporting.build import build_report
from tganbench.store import LEGACY_METRICS, ResultsStore, read_results, recorded_metrics

SHARPNESS = {"name": "sharpness", "title": "sharpness", "description": "mean gradient magnitude of the samples",
             "direction": "higher", "every_evaluation": True, "columns": {"sharpness": "sharpness"},
             "best": False, "threshold": "5%", "unit": "number"}


def _records() -> list[dict]:
    return [{**asdict(metric)} for metric in LEGACY_METRICS if metric.name != "recognised"] + [SHARPNESS]


def with_sharpness(folder: Path, factor: dict[str, float] | None = None) -> Path:
    """Add the ``sharpness`` column (0.5 + 0.1 * seed, times ``factor[strategy]``) and its manifest record."""
    factor = factor or {}
    for name in ("cells.csv", "evals.csv"):
        table = pd.read_csv(folder / name)
        table["sharpness"] = [(0.5 + 0.1 * seed) * factor.get(strategy, 1.0)
                              for strategy, seed in zip(table["strategy"], table["seed"])]
        table.to_csv(folder / name, index=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["metrics"] = _records()
    manifest["protocol"] = {"target_steps": 200}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_the_metric_list_comes_from_the_manifest_or_the_legacy_list(tmp_path):
    folder = with_sharpness(make_results(tmp_path / "run"))
    assert [metric.name for metric in read_results(folder).metrics] == ["fd", "kid", "sharpness"]
    cells = pd.read_csv(folder / "cells.csv")
    assert [metric.name for metric in recorded_metrics({}, cells)] == ["fd", "kid"]
    assert [metric.name for metric in recorded_metrics({}, cells.assign(recognised=0.5))] == ["fd", "kid", "recognised"]
    fd = read_results(folder).metrics[0]
    assert (fd.headline, fd.final, fd.best_column, fd.higher_is_better) == ("fd", "fd_final", "fd_best", False)


def test_a_recorded_metric_is_in_the_summary_the_page_and_the_curves(tmp_path):
    plain = make_results(tmp_path / "plain")
    folder = with_sharpness(make_results(tmp_path / "run"))
    build_report(plain)
    build_report(folder)
    summary = (folder / "summary.md").read_text()
    assert "FD[shapes], KID and sharpness on 200 generated" in summary
    header = next(line for line in summary.splitlines() if line.startswith("|   shots"))
    assert header.split("|")[-7].strip() == "sharpness"  # after KID, before time to target and the times
    assert "0.55 ± 0.0707" in summary  # seeds 0 and 1: 0.5 and 0.6
    parser, _ = parse(folder / "report.html")
    assert "sharpness" in [cell.strip() for cell in parser.text["th"]]
    assert "0.55 ± 0.0707" in [cell.strip() for cell in parser.text["td"]]
    # one more row of curves: sharpness is scored at every evaluation
    with Image.open(plain / "plots" / "fd_curves.png") as one, Image.open(folder / "plots" / "fd_curves.png") as two:
        assert two.height > 1.6 * one.height


def test_compare_gates_a_recorded_metric_in_its_own_direction(tmp_path):
    base = with_sharpness(make_results(tmp_path / "baseline"))
    same = run_cli("compare", str(base), str(base))
    assert same.code == 0, same.stdout
    assert "| sharpness " in same.stdout and "-5%" in same.stdout  # higher is better: a drop is the worsening
    sharper = with_sharpness(make_results(tmp_path / "sharper"), {"finetune": 1.5})
    result = run_cli("compare", str(base), str(sharper))
    assert result.code == 0, result.stdout
    assert any("finetune" in line and "sharpness" in line and "improved" in line for line in result.stdout.splitlines())
    blurred = with_sharpness(make_results(tmp_path / "blurred"), {"finetune": 0.8})
    result = run_cli("compare", str(base), str(blurred))
    assert result.code == 1
    regressions = [line for line in result.stdout.splitlines() if "REGRESSION" in line]
    assert regressions and all("finetune" in line and "sharpness" in line for line in regressions)
    assert run_cli("compare", str(base), str(blurred), "--max-regression", "sharpness=off").code == 0
    assert run_cli("compare", str(base), str(blurred), "--max-regression", "sharpness=25%").code == 0
    assert run_cli("compare", str(base), str(blurred), "--max-regression", "kid_std=0.5").code == 1
    unknown = run_cli("compare", str(base), str(blurred), "--max-regression", "blur=5%")
    assert unknown.code == 2 and "sharpness" in unknown.stderr


def test_new_cell_columns_are_tolerated_by_report_compare_and_resume(tmp_path):
    folder = make_results(tmp_path / "run", seeds=(0,), shots=(100,))
    cells = pd.read_csv(folder / "cells.csv")
    cells["strategy"] = cells["strategy"].replace({"finetune": "finetune+diffaugment[policy=color]"})
    cells["augmentation"] = ["diffaugment[policy=color]" if "+" in label else "none" for label in cells["strategy"]]
    cells["optimizer"] = json.dumps({"lr": 2e-4, "betas": [0.0, 0.99]})
    cells.to_csv(folder / "cells.csv", index=False)
    evals = pd.read_csv(folder / "evals.csv")
    evals["strategy"] = evals["strategy"].replace({"finetune": "finetune+diffaugment[policy=color]"})
    evals.to_csv(folder / "evals.csv", index=False)
    build_report(folder)
    assert "| finetune+diffaugment[policy=color] |" in (folder / "summary.md").read_text()
    assert run_cli("compare", str(folder), str(folder), "--allow-protocol-change").code == 0
    store = ResultsStore(folder)
    try:
        assert store.load_finished(lambda row: row["status"] == "ok") == 3
        assert {row["optimizer"] for row in store.cells} == {cells["optimizer"].iloc[0]}
        assert len(store.evals) == 3 * 3
    finally:
        store.close()


def test_report_on_a_folder_whose_manifest_lacks_the_protocol_is_one_line(tmp_path):
    folder = make_results(tmp_path / "run")
    (folder / "manifest.json").write_text(json.dumps({"run_id": "old"}))
    result = run_cli("report", str(folder))
    assert result.code == 2
    assert result.stderr.count("\n") == 1 and "manifest.json lacks config" in result.stderr
