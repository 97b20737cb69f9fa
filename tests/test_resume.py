"""Nothing lost: resume after a kill, one run per folder, failed and interrupted cells, self-healing caches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from tganbench.config import resolve_config

SMOKE_ALL = ["run", "--strategies", "all", "--profile", "smoke"]
RESULT_COLUMNS = ["shots", "strategy", "seed", "status", "fd_final", "fd_best", "fd_best_step", "kid_mean", "kid_std"]


def _start(args: list[str]) -> subprocess.Popen:
    """``tganbench ARGS`` in a separate process (same cache and plugin settings as this test)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tganbench.cli", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )


def _wait_for(condition, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended early: {process.stderr.read()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _finished_cells(out: Path) -> int:
    try:
        return len(pd.read_csv(out / "cells.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def test_sigkill_then_rerun_skips_finished_cells_and_equals_an_uninterrupted_run(smoke_run, tmp_path):
    reference, _ = smoke_run  # the same command, never interrupted
    out = tmp_path / "killed"
    process = _start([*SMOKE_ALL, "--out", str(out)])
    _wait_for(lambda: _finished_cells(out) >= 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = _finished_cells(out)
    assert 2 <= kept < _finished_cells(reference), "the CSV must stay parseable and hold the finished cells"
    # A kill between a cell's result file and the CSV rewrite leaves one more result file: resume adopts it.
    finished = len(list((out / "cells").glob("*.json")))
    assert finished in (kept, kept + 1)

    result = run_cli(*SMOKE_ALL, "--out", str(out))
    assert result.code == 0, result.stderr
    assert f"resume: {finished} finished cells already in {out} are kept and skipped" in result.stderr
    resumed = pd.read_csv(out / "cells.csv")[RESULT_COLUMNS]
    pd.testing.assert_frame_equal(resumed, pd.read_csv(reference / "cells.csv")[RESULT_COLUMNS])
    columns = ["strategy", "step", "fd", "kid_mean"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "evals.csv")[columns], pd.read_csv(reference / "evals.csv")[columns])
    assert (out / "report.html").is_file()


def test_a_second_run_into_a_folder_in_use_is_refused(smoke_run, tmp_path):
    reference, _ = smoke_run  # the same command, run alone
    out = tmp_path / "busy"
    first = _start([*SMOKE_ALL, "--out", str(out)])
    _wait_for(lambda: (out / "manifest.json").is_file(), first)
    second = run_cli(*SMOKE_ALL, "--out", str(out))
    assert second.code == 2
    assert f"results folder {out} is in use by another tganbench run (process {first.pid})" in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert _finished_cells(out) == _finished_cells(reference)


def test_another_protocol_in_the_folder_is_refused_unless_force_new(tmp_path):
    out = tmp_path / "run"
    assert run_cli("run", "--strategies", "finetune", "--profile", "smoke", "--out", str(out)).code == 0
    other = run_cli("run", "--strategies", "finetune", "--profile", "smoke", "--lr", "0.001", "--out", str(out))
    assert other.code == 2
    default_lr = resolve_config("smoke").lr
    assert f"holds a run with a different protocol (lr {default_lr} -> 0.001)" in other.stderr
    forced = run_cli("run", "--strategies", "finetune", "--profile", "smoke", "--lr", "0.001", "--force-new",
                     "--out", str(out))
    assert forced.code == 0, forced.stderr
    assert "resume:" not in forced.stderr and _finished_cells(out) == 1


RAISING_PLUGIN = '''
import torch
from tganbench import Strategy, hookimpl


class Boom(Strategy):
    name = "boom"
    description = "raises after a few steps"

    def generator_loss(self, state, fake, z):
        if state.step == 5:
            raise ValueError("the strategy broke at step 5")
        return fake.sum() * 0


class OutOfMemory(Strategy):
    name = "oom"
    description = "pretends the GPU ran out of memory"

    def generator_loss(self, state, fake, z):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


class Interrupt(Strategy):
    name = "ctrl-c"
    description = "the user presses Ctrl-C during this cell"

    def generator_loss(self, state, fake, z):
        raise KeyboardInterrupt


@hookimpl
def tganbench_register_strategies(register):
    register(Boom)
    register(OutOfMemory)
    register(Interrupt)
'''


@pytest.fixture
def raising_plugin(tmp_path) -> Path:
    path = tmp_path / "raising_plugin.py"
    path.write_text(RAISING_PLUGIN)
    return path


def test_a_strategy_that_raises_is_failed_logged_and_the_others_finish(raising_plugin, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--plugin", str(raising_plugin), "--strategies", "boom,finetune,oom", "--profile", "smoke",
            "--out", str(out)]
    result = run_cli(*args)
    assert result.code == 1
    cells = pd.read_csv(out / "cells.csv").set_index("strategy")
    assert cells.loc["boom", "status"] == "failed"
    assert cells.loc["boom", "error"] == "ValueError: the strategy broke at step 5"
    assert cells.loc["finetune", "status"] == "ok"
    assert "out of GPU memory at batch size 32, resolution 32" in cells.loc["oom", "error"]
    log = (out / "errors.log").read_text()
    assert "cell boom 100 shots seed 0 failed" in log and "Traceback" in log and "step 5" in log
    assert "boom 100 shots seed 0: failed: ValueError: the strategy broke at step 5" in result.stderr
    assert "2 failed" not in result.stdout and "1 failed" in result.stdout
    # A rerun keeps the finished cell and retries the failed ones (which fail again).
    again = run_cli(*args)
    assert again.code == 1
    assert "resume: 1 finished cells" in again.stderr
    assert len(pd.read_csv(out / "cells.csv")) == 3


def test_ctrl_c_keeps_finished_cells_and_says_how_to_resume(raising_plugin, tmp_path):
    out = tmp_path / "run"
    result = run_cli("run", "--plugin", str(raising_plugin), "--strategies", "finetune,ctrl-c,scratch",
                     "--profile", "smoke", "--out", str(out))
    assert result.code == 130
    assert f"interrupted: 1 of 3 cells are finished and kept in {out}" in result.stderr
    assert f"--out {out} to resume" in result.stderr
    assert list(pd.read_csv(out / "cells.csv")["strategy"]) == ["finetune"]
    assert not (out / ".lock").exists()


HOOK_PLUGIN = '''
from tganbench import hookimpl


@hookimpl
def tganbench_cell_finished(row):
    raise RuntimeError("logger is down")
'''


def test_a_plugin_hook_that_raises_is_reported_and_the_run_goes_on(tmp_path):
    plugin = tmp_path / "hook_plugin.py"
    plugin.write_text(HOOK_PLUGIN)
    out = tmp_path / "run"
    result = run_cli("run", "--plugin", str(plugin), "--strategies", "finetune,scratch", "--profile", "smoke",
                     "--out", str(out))
    assert result.code == 0, result.stderr
    assert "tganbench_cell_finished hook raised RuntimeError: logger is down" in result.stderr
    assert _finished_cells(out) == 2
    assert "logger is down" in (out / "errors.log").read_text()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_source_checkpoint_cache_is_rebuilt(tmp_path, damage):
    cache = tmp_path / "cache"
    args = ["run", "--strategies", "finetune", "--profile", "smoke", "--cache-dir", str(cache)]
    first = run_cli(*args, "--out", str(tmp_path / "first"))
    assert first.code == 0, first.stderr
    (checkpoint,) = (cache / "sources").glob("*.pt")
    data = bytearray(checkpoint.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # a flipped byte inside the stored weights: the file still loads, the checksum does not match
        data[len(data) // 2] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    second = run_cli(*args, "--out", str(tmp_path / "second"))
    assert second.code == 0, second.stderr
    assert f"source: cache file {checkpoint} is unreadable or corrupt" in second.stderr
    assert "rebuilding it" in second.stderr
    third = run_cli(*args, "--out", str(tmp_path / "third"))
    assert "reusing cached checkpoint" in third.stderr
    fd = [pd.read_csv(tmp_path / name / "cells.csv")["fd_final"].iloc[0] for name in ("first", "second", "third")]
    assert fd[0] == fd[1] == fd[2]
