"""The "Write a strategy plugin" walkthrough in docs/plugins.md works step by step, as printed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import install_fake_distribution, run_cli

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()


def _block(language: str, first_line: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", PAGE, flags=re.S)
    return next(block for block in blocks if block.startswith(first_line))


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder holding the walkthrough's my_freeze.py, on sys.path like its PYTHONPATH step."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "my_freeze.py").write_text(_block("python", "# my_freeze.py"))
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("my_freeze", None)


def test_example_is_about_25_lines():
    assert len(_block("python", "# my_freeze.py").strip().splitlines()) <= 30


@pytest.mark.parametrize("how", ["file", "module"])
def test_example_lists_and_runs_beside_the_built_ins(plugin_dir, tmp_path, how):
    spec = str(plugin_dir / "my_freeze.py") if how == "file" else "my_freeze"
    listed = run_cli("list", "--plugin", spec)
    assert listed.code == 0, listed.stderr
    assert any(line.startswith("freeze-d-but-last") and spec in line for line in listed.stdout.splitlines())
    out = tmp_path / "run"
    result = run_cli(
        "run", "--plugin", spec, "--strategies", "freeze-d-but-last,freeze-d,finetune",
        "--profile", "smoke", "--out", str(out),
    )
    assert result.code == 0, result.stderr
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells["strategy"]) == ["freeze-d-but-last", "freeze-d", "finetune"]
    assert cells.loc[0, "trainable_params"] < cells.loc[1, "trainable_params"] < cells.loc[2, "trainable_params"]


def test_example_passes_check_plugin(plugin_dir):
    result = run_cli("check-plugin", "freeze-d-but-last", "--plugin", str(plugin_dir / "my_freeze.py"))
    assert result.code == 0, result.stdout + result.stderr
    assert "12 of 12 checks passed" in result.stdout  # on dcgan and stylegan2


def test_example_packaged_with_the_documented_entry_point_is_discovered(plugin_dir, tmp_path, monkeypatch):
    toml = _block("toml", "[project.entry-points.tganbench]")
    entry_points = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"$', toml, flags=re.M))
    assert entry_points == {"my-freeze": "my_freeze"}
    site = tmp_path / "site"
    install_fake_distribution(site, "my_freeze", entry_points)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("TGANBENCH_LOAD_PLUGINS")
    listed = run_cli("list")
    row = next(line for line in listed.stdout.splitlines() if line.startswith("freeze-d-but-last"))
    assert row.rstrip().endswith("my-freeze")


@pytest.fixture
def ewc_file(tmp_path):
    """The loss-level example's my_ewc.py, written as printed."""
    path = tmp_path / "my_ewc.py"
    path.write_text(_block("python", "# my_ewc.py"))
    yield path
    sys.modules.pop("my_ewc", None)


def test_loss_level_example_is_about_30_lines():
    assert len(_block("python", "# my_ewc.py").strip().splitlines()) <= 40


def test_loss_level_example_passes_check_plugin(ewc_file):
    result = run_cli("check-plugin", "ewc-like", "--plugin", str(ewc_file))
    assert result.code == 0, result.stdout + result.stderr
    assert "12 of 12 checks passed" in result.stdout  # on dcgan and stylegan2


def test_loss_level_example_keeps_g_nearer_the_source_than_finetuning(ewc_file):
    """The printed commands run, and the penalty does what it says: G's weights move far less from the
    source's where the source's output depends on them (the Fisher-weighted distance)."""
    import importlib.util

    import torch

    from tganbench.data.shapes import render_shapes
    from tganbench.models import ModelConfig, build_models
    from tganbench.strategies.finetune import Finetune
    from tganbench.train import TrainConfig, train

    spec = importlib.util.spec_from_file_location("my_ewc", ewc_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    images = render_shapes("triangle", 64, 32, seed=3)
    moved = []
    ewc = module.EWCLike()
    for strategy in (ewc, Finetune()):
        g, d = build_models(ModelConfig(width=8), 0, torch.device("cpu"))
        source = {"g": {k: v.clone() for k, v in g.state_dict().items()},
                  "d": {k: v.clone() for k, v in d.state_dict().items()}}
        before = [p.detach().clone() for p in g.parameters()]
        train(g, d, strategy, images, TrainConfig(steps=30, batch_size=16), seed=1, source_weights=source)
        moved.append(sum(float((f * (p.detach() - b).square()).sum())
                         for f, p, b in zip(ewc.fisher, g.parameters(), before)))
    assert moved[0] < moved[1] / 10
    commands = re.findall(r"```bash\n(tganbench check-plugin ewc-like.*?)```", PAGE, flags=re.S)[0].splitlines()
    out = ewc_file.parent / "run"
    args = commands[1].split()[1:] + ["--out", str(out)]
    result = run_cli(*[str(ewc_file) if a == "my_ewc.py" else a for a in args])
    assert result.code == 0, result.stderr
    assert list(pd.read_csv(out / "cells.csv")["strategy"]) == ["ewc-like", "finetune"]
