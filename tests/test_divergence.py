"""A diverging strategy stops early with status "diverged"; the other cells still run."""

import math

import pandas as pd

from conftest import run_cli

NAN_PLUGIN = '''
from tganbench import Strategy, hookimpl


class Explode(Strategy):
    name = "explode"
    description = "adds a NaN to the generator loss"

    def generator_loss(self, state, fake, z):
        return fake.sum() * float("nan")


@hookimpl
def tganbench_register_strategies(register):
    register(Explode)
'''


def test_diverged_cell_is_recorded_and_others_continue(tmp_path):
    plugin = tmp_path / "explode_plugin.py"
    plugin.write_text(NAN_PLUGIN)
    out = tmp_path / "run"
    result = run_cli(
        "run", "--plugin", str(plugin), "--strategies", "explode,finetune", "--profile", "smoke",
        "--target-steps", "30", "--out", str(out),
    )
    assert result.code == 0  # divergence is a result, not an error: only failed cells make the exit code 1
    cells = pd.read_csv(out / "cells.csv").set_index("strategy")
    assert cells.loc["explode", "status"] == "diverged"
    assert cells.loc["explode", "steps"] == 30  # losses are checked at the last step
    assert math.isnan(cells.loc["explode", "fd_final"])
    assert cells.loc["finetune", "status"] == "ok"
    assert math.isfinite(cells.loc["finetune", "fd_final"])
    assert "explode" in result.stdout and "1 diverged" in result.stdout
