"""Executors: local processes, submitit jobs and Ray tasks give the serial run's cells, lose no cell, load, never build.

The Ray tests start a local Ray instance and need the ``ray`` extra; they run
with ``pytest -m ray`` (``pip install -e ".[ray]"`` first).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import run_cli
from tganbench.cache import MissingArtefact
from tganbench.config import resolve_config
from tganbench.executors import WorkerSetup
from tganbench.executors.slurm import CellJob
from tganbench.store import save_cell_result
from tganbench.worker import load_shared

# Four cells: one that starts from scratch and one from the source, two seeds, so two workers each get more than one.
GRID = ["run", "--profile", "smoke", "--strategies", "scratch,finetune", "--seeds", "2", "--quiet"]
GRID_CELLS = 4
# submitit's local executor: real job processes, no Slurm; the time limit and the GPU count set explicitly.
SUBMITIT_LOCAL = "submitit[cluster=local,time=20,gpus=0,cpus=1]"
# What may differ between two executions of one cell: how long it took and how much memory it held.
TIMING = ["train_seconds", "eval_seconds", "steps_per_second", "peak_memory_mb"]


def _values(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A results folder's cells and evaluations without the timing columns."""
    cells = pd.read_csv(out / "cells.csv").drop(columns=TIMING)
    evals = pd.read_csv(out / "evals.csv").drop(columns=["train_seconds"])
    return cells, evals


@pytest.fixture
def one_thread():
    """Torch at one thread in this process: the serial reference then runs like each local:2 worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def serial_reference(tmp_path_factory) -> Path:
    """The GRID run serially at one thread, once for this module."""
    out = tmp_path_factory.mktemp("serial") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:  # the cache of the autouse fixture, which is per test
            patch.setenv("TGANBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "tganbench-cache"))
            patch.setenv("TGANBENCH_LOAD_PLUGINS", "")
            result = run_cli(*GRID, "--out", str(out))
    finally:
        torch.set_num_threads(threads)
    assert result.code == 0, result.stderr
    return out


@pytest.mark.parametrize("executor", ["local:2", SUBMITIT_LOCAL, pytest.param("ray[cpus=1]", marks=pytest.mark.ray)])
def test_a_parallel_run_gives_the_serial_runs_cells_and_one_result_file_per_cell(serial_reference, tmp_path,
                                                                                  one_thread, executor):
    out = tmp_path / "parallel"
    result = run_cli(*GRID, "--executor", executor, "--out", str(out))
    assert result.code == 0, result.stderr
    assert f"executor {executor.split('[')[0]}" in result.stderr
    cells, evals = _values(out)
    expected_cells, expected_evals = _values(serial_reference)
    pd.testing.assert_frame_equal(cells, expected_cells)
    pd.testing.assert_frame_equal(evals, expected_evals)
    assert set(cells["device"]) == {f"cpu ({cells['device'][0].split('(')[1].split(',')[0]}, 1 threads)"}
    assert len(list((out / "cells").glob("*.json"))) == len(cells) == GRID_CELLS
    assert torch.get_num_threads() == 1  # the driver's threads are restored after the run


DYING_PLUGIN = '''
import os

from tganbench import Strategy, hookimpl


class Dying(Strategy):
    """Fine-tunes, but its worker process exits at once while the file named by $DIE_MARKER exists."""

    name = "dying"
    description = "test strategy whose process dies"
    from_source = True

    def prepare(self, state):
        if os.path.exists(os.environ["DIE_MARKER"]):
            os._exit(7)


@hookimpl
def tganbench_register_strategies(register):
    register(Dying)
'''


@pytest.mark.parametrize("executor, message", [
    ("local:2", "WorkerLost: local worker process "),
    (SUBMITIT_LOCAL, "WorkerLost: submitit job "),
    pytest.param("ray[cpus=1]", "WorkerLost: ray task failed", marks=pytest.mark.ray),
])
def test_a_worker_that_dies_fails_only_its_cell_and_resuming_reruns_it(tmp_path, monkeypatch, executor, message):
    plugin = tmp_path / "dying_plugin.py"
    plugin.write_text(DYING_PLUGIN)
    marker = tmp_path / "die"
    marker.write_text("")
    monkeypatch.setenv("DIE_MARKER", str(marker))
    out = tmp_path / "run"
    args = ["run", "--plugin", str(plugin), "--profile", "smoke", "--strategies", "dying,finetune", "--seeds", "2",
            "--executor", executor, "--quiet", "--out", str(out)]
    result = run_cli(*args)
    assert result.code == 1
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells["status"]) == ["failed", "ok", "failed", "ok"]
    assert cells["error"][0].startswith(message)
    if executor == "local:2":
        assert cells["error"][0].endswith("died (exit code 7) during the cell")

    marker.unlink()
    again = run_cli(*args)
    assert again.code == 0, again.stderr
    assert "resume: 2 finished cells" in again.stderr
    assert list(pd.read_csv(out / "cells.csv")["status"]) == ["ok"] * 4


@pytest.mark.parametrize("executor", ["local:2", SUBMITIT_LOCAL])
def test_a_driver_killed_mid_run_resumes_to_the_same_cells(serial_reference, tmp_path, executor):
    out = tmp_path / "killed"
    args = [*GRID, "--executor", executor, "--out", str(out)]
    # local:2 gives each worker half the driver's threads; submitit's cpus=1 sets one thread either way.
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    process = subprocess.Popen([sys.executable, "-m", "tganbench.cli", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not list((out / "cells").glob("*.json")):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no cell finished in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(1)  # the orphaned workers finish their cells and exit on their own

    resumed = subprocess.run([sys.executable, "-m", "tganbench.cli", *args], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"finished cells already in {out} are kept and skipped" in resumed.stderr
    cells, evals = _values(out)
    expected_cells, expected_evals = _values(serial_reference)
    pd.testing.assert_frame_equal(cells, expected_cells)
    pd.testing.assert_frame_equal(evals, expected_evals)


def test_a_worker_without_the_drivers_cache_refuses_to_build_it(tmp_path):
    config = resolve_config(profile="smoke", strategies="finetune", source_checkpoint="pretrain")
    setup = WorkerSetup(config, tmp_path / "empty-cache", tmp_path / "out", source_seeds=(0,))
    with pytest.raises(MissingArtefact, match="every worker must see the driver's cache folder"):
        load_shared(setup)
    assert not (tmp_path / "empty-cache").exists() or not any((tmp_path / "empty-cache").rglob("*.pt"))


def test_a_requeued_submitit_job_returns_its_finished_cell_without_running_it(tmp_path):
    config = resolve_config(profile="smoke", strategies="finetune")
    out = tmp_path / "out"
    row = {"shots": 100, "strategy": "finetune", "seed": 0, "source_seed": 0, "status": "ok", "fd_final": 1.5}
    save_cell_result(out, "cells/100shots-seed0-finetune.json", row, [{"step": 20, "fd": 1.5}])
    # An empty cache: a job that tried to run the cell would fail to load the shared artefacts.
    setup = WorkerSetup(config, tmp_path / "empty-cache", out, source_seeds=(0,))
    result = CellJob()(setup, "cells/100shots-seed0-finetune.json", b"not a cell", 1)
    assert result.row == row and result.evals == [{"step": 20, "fd": 1.5}]


OBSERVER_PLUGIN = """
import json
import os

from tganbench import hookimpl


def _record(kind, row):
    with open(os.environ["HOOK_LOG"], "a") as log:
        log.write(json.dumps([kind, os.getpid(), row["strategy"], row["seed"], row.get("step")]) + "\\n")


@hookimpl
def tganbench_evaluated(row):
    _record("evaluated", row)


@hookimpl
def tganbench_cell_finished(row):
    _record("finished", row)
"""


def test_observer_hooks_fire_in_the_driver_as_results_arrive(tmp_path, monkeypatch):
    plugin = tmp_path / "observer_plugin.py"
    plugin.write_text(OBSERVER_PLUGIN)
    log = tmp_path / "hooks.jsonl"
    monkeypatch.setenv("HOOK_LOG", str(log))
    result = run_cli("run", "--plugin", str(plugin), "--profile", "smoke", "--strategies", "finetune,freeze-d",
                     "--executor", "local:2", "--quiet", "--out", str(tmp_path / "run"))
    assert result.code == 0, result.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert {pid for _, pid, *_ in calls} == {os.getpid()}
    for strategy in ("finetune", "freeze-d"):
        mine = [(kind, step) for kind, _, name, _, step in calls if name == strategy]
        assert mine == [("evaluated", 0), ("evaluated", 10), ("evaluated", 20), ("finished", None)]


def test_ctrl_c_stops_the_workers_and_keeps_the_finished_cells(tmp_path):
    out = tmp_path / "interrupted"
    # Cells of 200 steps (smoke's are 20, about a second each), so that Ctrl-C lands while cells are still running.
    args = [*GRID, "--target-steps", "200", "--eval-every", "100", "--executor", "local:2", "--out", str(out)]
    # Ctrl-C's default action in the child even when this test runs in the background, where the shell has
    # set SIGINT to be ignored (children inherit that, and Python then installs no KeyboardInterrupt handler).
    process = subprocess.Popen([sys.executable, "-m", "tganbench.cli", *args], env={**os.environ},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 600
    while not (out / "cells.csv").is_file():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no cell finished in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 130, stderr
    finished = len(pd.read_csv(out / "cells.csv"))
    assert 1 <= finished < GRID_CELLS
    assert f"interrupted: {finished} of {GRID_CELLS} cells are finished and kept in {out}" in stderr
    assert "Traceback" not in stderr
