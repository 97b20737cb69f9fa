"""`tganbench compare`: identical runs pass, degraded cells fail, protocols must match, seeds must support a verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from tganbench.errors import UsageError
from tganbench.reporting.compare import Threshold, one_sided_p, parse_threshold

PROTOCOL = {"target_steps": 200, "n_generated": 500, "n_reference": 500, "feature_extractor": "shapes",
            "resolution": 32, "pair_fingerprint": "abc", "device": "cpu (test)"}


def make_results(folder: Path, fd: dict[str, list[float]], protocol: dict | None = None, seconds: float = 10.0) -> Path:
    """A results folder with one cell per (strategy, seed): ``fd[strategy][seed]`` is its final and best FD."""
    folder.mkdir(parents=True)
    rows = [
        {"pair": "shapes", "pair_fingerprint": "abc", "shots": 100, "strategy": strategy, "seed": seed,
         "status": "ok", "fd_final": value, "fd_best": value, "kid_mean": value / 50, "train_seconds": seconds,
         "metric": "FD", "extractor": "shapes", "n_generated": 500, "n_reference": 500}
        for strategy, values in fd.items() for seed, value in enumerate(values)
    ]
    pd.DataFrame(rows).to_csv(folder / "cells.csv", index=False)
    (folder / "evals.csv").write_text("pair,shots,strategy,seed,step,train_seconds,fd\n")
    manifest = {"run_id": folder.name, "protocol": protocol or PROTOCOL, "device": PROTOCOL["device"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


BASELINE = {"scratch": [60.0, 70.0, 65.0], "finetune": [30.0, 34.0, 32.0], "freeze-d": [40.0, 50.0, 45.0]}


def _scaled(fd: dict[str, list[float]], factors: dict[str, list[float]]) -> dict[str, list[float]]:
    return {s: [v * f for v, f in zip(values, factors.get(s, [1.0] * len(values)))] for s, values in fd.items()}


def _compare(tmp_path: Path, current: dict, *options: str, protocol: dict | None = None):
    base = make_results(tmp_path / "baseline", BASELINE)
    cur = make_results(tmp_path / "current", current, protocol)
    return run_cli("compare", str(base), str(cur), *options)


def test_identical_results_pass(tmp_path):
    result = _compare(tmp_path, BASELINE)
    assert result.code == 0, result.stdout + result.stderr
    assert "**No regression.**" in result.stdout


def test_identical_real_runs_pass(smoke_run, tmp_path):
    out, _ = smoke_run
    shutil.copytree(out, tmp_path / "copy")
    assert run_cli("compare", str(out), str(tmp_path / "copy")).code == 0


def test_machine_float_noise_is_tolerated(tmp_path):
    # Another CPU can move every FD by a few percent, in either direction.
    noisy = _scaled(BASELINE, {"scratch": [1.03, 0.97, 1.02], "finetune": [1.04, 1.02, 0.99], "freeze-d": [0.98, 1.05, 1.01]})
    assert _compare(tmp_path, noisy).code == 0


def test_a_degraded_strategy_fails_naming_the_cell_and_metric(tmp_path):
    degraded = _scaled(BASELINE, {"finetune": [1.5, 1.6, 1.45]})
    result = _compare(tmp_path, degraded)
    assert result.code == 1
    rows = [line for line in result.stdout.splitlines() if "REGRESSION" in line]
    assert rows and all("finetune" in row for row in rows)
    assert any("final FD" in row for row in rows) and any("best FD" in row for row in rows)
    assert "compare: 2 regression(s)" in result.stderr


def test_a_change_past_the_threshold_that_the_seeds_do_not_support_passes(tmp_path):
    # Mean +12%, but one seed got better: a paired one-sided t-test does not support a regression.
    erratic = _scaled(BASELINE, {"freeze-d": [1.45, 0.95, 1.0]})
    result = _compare(tmp_path, erratic)
    assert result.code == 0, result.stdout
    assert "within seed noise" in result.stdout


def test_with_one_seed_the_threshold_alone_decides(tmp_path):
    base = make_results(tmp_path / "baseline", {"finetune": [30.0]})
    worse = make_results(tmp_path / "worse", {"finetune": [33.5]})  # +11.7%
    close = make_results(tmp_path / "close", {"finetune": [32.5]})  # +8.3%
    result = run_cli("compare", str(base), str(worse))
    assert result.code == 1
    assert "REGRESSION (1 seed: threshold only)" in result.stdout
    assert "single seed: the threshold alone decides" in result.stdout
    assert run_cli("compare", str(base), str(close)).code == 0


def test_fewer_samples_showing_the_target_is_a_regression(tmp_path):
    """``recognised`` is higher-is-better: a drop of more than 0.1 that the seeds support fails."""
    base = make_results(tmp_path / "baseline", BASELINE)
    cells = pd.read_csv(base / "cells.csv").assign(recognised=0.9)
    cells.to_csv(base / "cells.csv", index=False)
    for name, shares, code in (("same", [0.9, 0.88, 0.91], 0), ("better", [0.99, 0.98, 0.97], 0),
                               ("worse", [0.6, 0.55, 0.62], 1)):
        current = make_results(tmp_path / name, BASELINE)
        rows = pd.read_csv(current / "cells.csv")
        rows["recognised"] = [shares[seed] if strategy == "finetune" else 0.9
                              for strategy, seed in zip(rows["strategy"], rows["seed"])]
        rows.to_csv(current / "cells.csv", index=False)
        result = run_cli("compare", str(base), str(current))
        assert result.code == code, result.stdout
        regressions = [line for line in result.stdout.splitlines() if "REGRESSION" in line]
        assert all("finetune" in line and "recognised" in line for line in regressions)
        assert bool(regressions) == bool(code)


def test_thresholds_can_be_changed_and_switched_off(tmp_path):
    slower = make_results(tmp_path / "slower", BASELINE, seconds=30.0)
    base = make_results(tmp_path / "baseline", BASELINE)
    assert run_cli("compare", str(base), str(slower)).code == 1  # train_seconds tripled: over the 50% default
    assert run_cli("compare", str(base), str(slower), "--max-regression", "time=off").code == 0
    assert run_cli("compare", str(base), str(slower), "--max-regression", "train_seconds=250%").code == 0


def test_a_protocol_mismatch_is_refused_unless_allowed(tmp_path):
    other = {**PROTOCOL, "target_steps": 400}
    result = _compare(tmp_path, BASELINE, protocol=other)
    assert result.code == 2
    assert "refusing to compare runs with different protocols (target_steps: 200 -> 400)" in result.stderr
    allowed = run_cli("compare", str(tmp_path / "baseline"), str(tmp_path / "current"), "--allow-protocol-change")
    assert allowed.code == 0 and "protocol differs (compared anyway): target_steps: 200 -> 400" in allowed.stdout


def test_a_missing_or_failed_cell_is_a_regression(tmp_path):
    current = make_results(tmp_path / "current", {k: v for k, v in BASELINE.items() if k != "freeze-d"})
    base = make_results(tmp_path / "baseline", BASELINE)
    result = run_cli("compare", str(base), str(current))
    assert result.code == 1 and "REGRESSION: missing from the current run" in result.stdout
    cells = pd.read_csv(current / "cells.csv")
    cells.loc[0, "status"] = "failed"
    cells.to_csv(current / "cells.csv", index=False)
    assert "REGRESSION: 1 failed (baseline: all ok)" in run_cli("compare", str(base), str(current)).stdout


def test_bad_input_is_exit_2(tmp_path):
    base = make_results(tmp_path / "baseline", BASELINE)
    unrelated = make_results(tmp_path / "unrelated", {"other": [1.0]})
    for arguments, fragment in [
        ([str(base), str(tmp_path / "nope")], "is not a folder"),
        ([str(base), str(unrelated)], "have no cell in common"),
        ([str(base), str(base), "--max-regression", "fd"], "--max-regression expects METRIC=VALUE"),
        ([str(base), str(base), "--max-regression", "fid=10%"], "--max-regression expects METRIC=VALUE"),
    ]:
        result = run_cli("compare", *arguments)
        assert result.code == 2 and fragment in result.stderr, (arguments, result.stderr)


def test_the_table_can_be_written_for_a_ci_summary(tmp_path):
    base = make_results(tmp_path / "baseline", BASELINE)
    out = tmp_path / "compare.md"
    result = run_cli("compare", str(base), str(base), "--output", str(out))
    assert result.code == 0 and out.read_text() == result.stdout.rstrip("\n") + "\n"


def test_threshold_parsing():
    assert parse_threshold("fd=10%") == Threshold("fd_final", 0.10, True)
    assert parse_threshold("kid=0.5") == Threshold("kid_mean", 0.5, False)
    assert parse_threshold("time=off") == ("train_seconds", None)
    with pytest.raises(UsageError):
        parse_threshold("fd=-3%")


def test_one_sided_p_pairs_shared_seeds():
    baseline = pd.Series([40.0, 50.0, 60.0])
    assert one_sided_p(baseline, baseline + 10) == 0.0  # a constant shift: the sign decides
    assert one_sided_p(baseline, pd.Series([41.0, 58.0, 62.0])) < 0.2
    assert one_sided_p(baseline, pd.Series([30.0, 50.0, 60.0])) > 0.5
    assert pd.isna(one_sided_p(pd.Series([40.0]), pd.Series([50.0])))
