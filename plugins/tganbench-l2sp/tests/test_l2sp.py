"""The L2-SP plugin: its penalty, its discovery after installation, and the contract check."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import torch

from tganbench_l2sp import penalty


def _tganbench(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TGANBENCH_CACHE": str(tmp_path / "cache")}
    env.pop("TGANBENCH_LOAD_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "tganbench.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_penalty_is_zero_at_the_source_and_pulls_back_toward_it():
    weight = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    anchors = [(weight, weight.detach().clone())]
    assert penalty(anchors).item() == 0.0
    with torch.no_grad():
        weight += torch.tensor([0.5, -1.0])
    value = penalty(anchors)
    assert value.item() == 0.25 + 1.0
    value.backward()
    assert torch.equal(weight.grad, torch.tensor([1.0, -2.0]))  # gradient descent moves back toward the anchor


def test_installed_package_exposes_the_entry_point():
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="tganbench")}
    assert names.get("l2sp") == "tganbench_l2sp"


def test_tganbench_lists_it_with_its_plugin_name(tmp_path):
    result = _tganbench("list", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("l2sp "))
    assert "weight=0.01" in row and row.rstrip().endswith("l2sp")


def test_passes_the_plugin_contract_check(tmp_path):
    result = _tganbench("check-plugin", "l2sp", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "12 of 12 checks passed" in result.stdout  # on dcgan and stylegan2
