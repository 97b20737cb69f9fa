"""The README's plugin example works as printed."""

import re
from pathlib import Path

import pandas as pd

from conftest import run_cli

README = Path(__file__).resolve().parent.parent / "README.md"


def _plugin_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(block for block in blocks if block.startswith("# my_freeze.py"))


def test_readme_plugin_example_lists_and_runs(tmp_path):
    plugin = tmp_path / "my_freeze.py"
    plugin.write_text(_plugin_example())
    listed = run_cli("list", "--plugin", str(plugin))
    assert listed.code == 0, listed.stderr
    assert "freeze-d-but-last" in listed.stdout
    out = tmp_path / "run"
    result = run_cli(
        "run", "--plugin", str(plugin), "--strategies", "freeze-d-but-last,freeze-d,finetune",
        "--profile", "smoke", "--out", str(out),
    )
    assert result.code == 0, result.stderr
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells["strategy"]) == ["freeze-d-but-last", "freeze-d", "finetune"]
    assert cells.loc[0, "trainable_params"] < cells.loc[1, "trainable_params"] < cells.loc[2, "trainable_params"]
