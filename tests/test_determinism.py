"""Same seed, same numbers on CPU, source pretraining included."""

import pandas as pd

from conftest import run_cli


def test_same_seed_twice_gives_the_same_fd(tmp_path, monkeypatch):
    results = []
    for attempt in ("a", "b"):
        monkeypatch.setenv("TGANBENCH_CACHE", str(tmp_path / f"cache-{attempt}"))
        out = tmp_path / attempt
        result = run_cli("run", "--strategies", "scratch,freeze-d", "--profile", "smoke", "--device", "cpu", "--out", str(out))
        assert result.code == 0, result.stderr
        assert "pretraining" in result.stderr  # each attempt trains its own source checkpoint
        results.append(pd.read_csv(out / "cells.csv"))
    first, second = results
    assert list(first["fd_final"]) == list(second["fd_final"])
    assert list(first["kid_mean"]) == list(second["kid_mean"])


def test_different_seeds_give_different_shots(tmp_path):
    result = run_cli("run", "--strategies", "finetune", "--profile", "smoke", "--seeds", "2", "--out", str(tmp_path / "r"))
    assert result.code == 0, result.stderr
    cells = pd.read_csv(tmp_path / "r" / "cells.csv")
    assert list(cells["seed"]) == [0, 1]
    assert cells["shots_fingerprint"].nunique() == 2
