"""Same seed, same numbers on CPU, source pretraining included."""

import pandas as pd
import torch

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


def test_an_embedded_pair_loaded_twice_in_one_process_is_the_same_and_cannot_be_altered_through_a_copy():
    from tganbench.data.embedded import ShapesPair
    from tganbench.data.shapes import render_shapes

    pair = ShapesPair("cache-check", source_shape="ring", target_shape="cross", n_source=50, n_target_pool=30,
                      n_reference=20)
    first = pair.load(16)
    first.source.zero_()
    first.target_pool.zero_()
    second = pair.load(16)
    assert torch.equal(second.source, render_shapes("ring", 50, 16, seed=1))
    assert torch.equal(torch.cat([second.target_pool, second.reference]), render_shapes("cross", 50, 16, seed=2))
