"""The field's comparison set in one run: every built-in crossed with every augmentation, one folder, resumable."""

from __future__ import annotations

import math

import pandas as pd

from conftest import BUILT_INS, run_cli
from tganbench.store import cell_result_file

AUGMENTATIONS = ["none", "diffaugment", "ada"]
METRICS = ["fd_final", "fd_best", "kid_mean", "recognised", "precision", "recall", "copying", "diversity"]


def _expected_labels() -> list[str]:
    """Strategy-major, as the run plans them; batchstat trains no discriminator, so it runs once, un-augmented."""
    labels = []
    for name in BUILT_INS:
        for augmentation in AUGMENTATIONS:
            if augmentation == "none":
                labels.append(name)
            elif name != "batchstat":
                labels.append(f"{name}+{augmentation}")
    return labels


def test_every_method_crossed_with_every_augmentation_runs_in_one_folder_and_resumes(tmp_path):
    out = tmp_path / "run"
    # Four steps and two evaluations a cell: enough for every metric to be finite, and 28 cells stay cheap.
    args = ["run", "--strategies", "all", "--augment", ",".join(AUGMENTATIONS), "--profile", "smoke",
            "--target-steps", "4", "--eval-every", "4", "--out", str(out)]
    result = run_cli(*args)
    assert result.code == 0, result.stderr
    cells = pd.read_csv(out / "cells.csv")
    expected = _expected_labels()
    assert list(cells["strategy"]) == expected and len(expected) == 3 * len(BUILT_INS) - 2
    assert (cells["status"] == "ok").all()
    for column in METRICS:
        assert cells[column].map(math.isfinite).all(), column

    # Forget two finished cells of different methods and augmentations: the same command runs only those two
    # again, keyed by their composed labels, and gets the same numbers.
    forgotten = ["cdc+diffaugment", "freeze-d+ada"]
    cells[~cells["strategy"].isin(forgotten)].to_csv(out / "cells.csv", index=False)
    evals = pd.read_csv(out / "evals.csv")
    evals[~evals["strategy"].isin(forgotten)].to_csv(out / "evals.csv", index=False)
    for label in forgotten:  # and their result files, which a resumed run would otherwise adopt
        (out / cell_result_file(100, 0, label)).unlink()
    resumed = run_cli(*args)
    assert resumed.code == 0, resumed.stderr
    assert f"resume: {len(expected) - 2} finished cells already" in resumed.stderr
    # the same numbers, and the rows in the plan's order although the two cells finished last
    columns = ["strategy", "seed", "status", *METRICS]
    pd.testing.assert_frame_equal(pd.read_csv(out / "cells.csv")[columns], cells[columns])
    assert list(pd.unique(pd.read_csv(out / "evals.csv")["strategy"])) == list(cells["strategy"])


def test_a_composed_label_runs_as_named_beside_plain_strategies_crossed_with_augment(tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "run", "--strategies", "scratch,freeze-d+ada,batchstat+diffaugment,all+diffaugment[policy=color]",
        "--augment", "none,diffaugment", "--profile", "smoke", "--target-steps", "2", "--eval-every", "2",
        "--out", str(out),
    )
    assert result.code == 0, result.stderr
    adversarial = [name for name in BUILT_INS if name != "batchstat"]
    expected = ["scratch", "scratch+diffaugment", "freeze-d+ada"]
    expected += [f"{name}+diffaugment[policy=color]" for name in adversarial]
    assert list(pd.read_csv(out / "cells.csv")["strategy"]) == expected
    assert "batchstat+(diffaugment): it trains no discriminator" in result.stderr
