"""The main job: every built-in strategy on the embedded pair, a table and a results folder."""

import json
import math

import pandas as pd

from conftest import BUILT_INS, run_cli



def test_smoke_run_all_prints_one_row_per_strategy(smoke_run):
    out, result = smoke_run
    assert result.code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["shots", "strategy"])
    caption, header, rows = " ".join(lines[:start]), lines[start], lines[start + 2:]
    assert caption.startswith("FD[shapes], KID, C_T and intra-cluster dist. on 200 generated vs 200 held-out target "
                              "images")
    assert all(len(line) <= 120 for line in lines)  # fits a terminal; the full table is in summary.md
    assert header.split()[:2] == ["shots", "strategy"]
    table = []  # the first table's rows (columns that do not fit continue in a second table below)
    for row in rows:
        if not row.split()[0].isdigit():
            break
        table.append(row.split()[:2])
    references = [["100", "copy-shots"], ["100", "real"], ["100", "source"]]
    assert table == [["100", name] for name in BUILT_INS] + references
    assert "FD[shapes] final" in header


def test_smoke_run_writes_results_folder(smoke_run):
    out, _ = smoke_run
    for name in ("cells.csv", "evals.csv", "summary.md", "manifest.json"):
        assert (out / name).is_file(), name
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells["strategy"]) == BUILT_INS
    assert (cells["status"] == "ok").all()
    for column in ("fd_final", "fd_best", "kid_mean", "kid_std", "train_seconds", "steps_per_second"):
        assert cells[column].map(math.isfinite).all(), column
    assert (cells["extractor"] == "shapes").all() and (cells["metric"] == "FD").all()
    assert (cells["n_generated"] == 200).all() and (cells["n_reference"] == 200).all()
    assert (cells["steps"] == 20).all()
    # Total counts everything a cell holds (G, D, minegan's miner, cdc's patch head), trainable what its optimisers hold.
    assert cells["trainable_params"].le(cells["total_params"]).all()
    # Step 0 plus every 10 steps up to 20: three evaluations per cell.
    evals = pd.read_csv(out / "evals.csv")
    assert sorted(evals.groupby("strategy").size().unique()) == [3]
    assert set(evals["step"]) == {0, 10, 20}
    summary = (out / "summary.md").read_text()
    for name in BUILT_INS:
        assert f"| {name}" in summary
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["profile"] == "smoke"
    assert manifest["versions"]["torch"]


def test_same_shots_and_noise_for_every_strategy(smoke_run):
    out, _ = smoke_run
    cells = pd.read_csv(out / "cells.csv")
    assert cells["shots_fingerprint"].nunique() == 1
    assert cells["pair_fingerprint"].nunique() == 1


def test_second_run_reuses_the_source_checkpoint(smoke_run, tmp_path):
    _, first = smoke_run
    assert "pretraining" in first.stderr or "reusing" in first.stderr
    again = run_cli("run", "--strategies", "finetune", "--profile", "smoke", "--out", str(tmp_path / "again"))
    assert again.code == 0, again.stderr
    assert "reusing cached checkpoint" in again.stderr


def test_fine_tuning_starts_from_the_source_and_scratch_does_not(smoke_run):
    out, _ = smoke_run
    evals = pd.read_csv(out / "evals.csv")
    start = evals[evals["step"] == 0].set_index("strategy")["fd"]
    # Every transfer strategy begins from the same source weights, hence the same step-0 samples.
    # minegan samples through its freshly drawn miner from step 0, so it is not among them.
    assert start[["finetune", "freeze-d", "freeze-g", "batchstat", "ewc", "adafm", "cdc", "dcl"]].nunique() == 1
    assert start["scratch"] != start["finetune"]
