"""Shared fixtures: an isolated cache, an in-process CLI runner and one smoke run of every strategy."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from tganbench.cli import main


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
    """Every test shares one throwaway source-checkpoint cache, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "tganbench-cache"
    monkeypatch.setenv("TGANBENCH_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CliResult]:
    """``tganbench run --strategies all --profile smoke --out DIR``, run once per session."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TGANBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "tganbench-cache"))
        result = run_cli("run", "--strategies", "all", "--profile", "smoke", "--out", str(out))
    return out, result
