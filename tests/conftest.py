"""Shared fixtures: an isolated cache, an in-process CLI runner and one smoke run of every strategy."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tganbench.cli import main

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n: one torch thread per test process, so that the processes share the cores instead of
    # oversubscribing them (the small models here gain little from a second thread anyway). The variable
    # gives the tganbench processes a test starts the same one thread: the thread count is in a run's protocol.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# The built-in strategies in the order `--strategies all` runs them.
BUILT_INS = ["scratch", "finetune", "freeze-d", "freeze-g", "batchstat", "ewc", "adafm", "cdc", "dcl", "minegan"]


@dataclass
class CliResult:
    """Exit code and captured output of one ``tganbench`` invocation."""

    code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run ``tganbench ARGS`` in this process and capture what it prints."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test shares one throwaway source-checkpoint cache, never the user's.

    Installed entry-point plugins (such as plugins/tganbench-l2sp) are not loaded,
    so "all" means the built-ins here; tests about entry points opt back in.
    """
    cache = tmp_path_factory.getbasetemp() / "tganbench-cache"
    monkeypatch.setenv("TGANBENCH_CACHE", str(cache))
    monkeypatch.setenv("TGANBENCH_LOAD_PLUGINS", "")
    monkeypatch.delenv("TGANBENCH_DISABLE_PLUGINS", raising=False)
    return cache


def install_fake_distribution(folder: Path, name: str, entry_points: dict[str, str]) -> None:
    """Make ``folder`` look like site-packages holding distribution ``name`` with ``tganbench`` entry points.

    importlib.metadata finds it once ``folder`` is on sys.path: the same discovery
    a ``pip install`` gives, without the network or touching the environment.
    """
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[tganbench]\n{lines}")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CliResult]:
    """``tganbench run --strategies all --profile smoke --out DIR``, run once per session."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TGANBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "tganbench-cache"))
        patch.setenv("TGANBENCH_LOAD_PLUGINS", "")
        result = run_cli("run", "--strategies", "all", "--profile", "smoke", "--out", str(out))
    return out, result
