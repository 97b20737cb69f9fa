"""Verdicts a reviewer can trust: the validation/test split and the honest best step, reference rows, source seeds."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import run_cli
from tganbench.cell import metric_columns
from tganbench.config import resolve_config
from tganbench.data.pairs import PairData, draw_shots
from tganbench.metrics.standard import FD
from tganbench.metrics.verdicts import is_copying
from tganbench.plan import plan_run, split_held_out
from tganbench.plugins import load_plugins
from tganbench.references import copy_shots, unused_target_images
from tganbench.store import NO_SOURCE, read_results


def _images(n: int, first: int = 0) -> torch.Tensor:
    """``n`` distinct 1x1 "images" whose value is their index (from ``first``)."""
    return torch.arange(first, first + n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 1, 1).clone()


def test_the_held_out_split_keeps_the_test_images_first_and_shares_a_short_set_in_proportion():
    held_out = _images(100)
    test, validation = split_held_out(held_out, 60, 40)
    assert test[:, 0, 0, 0].tolist() == list(range(60))
    assert validation[:, 0, 0, 0].tolist() == list(range(60, 100))
    test, validation = split_held_out(held_out, 100, 100)  # too few for both: half and half
    assert (len(test), len(validation)) == (50, 50)
    assert set(test[:, 0, 0, 0].tolist()).isdisjoint(validation[:, 0, 0, 0].tolist())


def test_best_is_the_test_value_at_the_step_validation_chooses_not_the_test_minimum():
    evals = [
        {"step": 0, "fd": 30.0, "fd_val": 31.0},
        {"step": 500, "fd": 20.0, "fd_val": 24.0},  # the lowest test FD
        {"step": 1000, "fd": 22.0, "fd_val": 21.0},  # the lowest validation FD: this step is chosen
        {"step": 1500, "fd": 25.0, "fd_val": 26.0},
    ]
    columns = metric_columns([FD], evals, ok=True)
    assert columns["fd_best_step"] == 1000
    assert columns["fd_best"] == 22.0
    assert columns["fd_oracle_best"] == 20.0
    assert columns["fd_final"] == 25.0 and columns["fd_val_final"] == 26.0
    assert columns["fd_best"] != min(row["fd"] for row in evals)


def test_a_nan_validation_value_never_chooses_the_step():
    evals = [{"step": 0, "fd": 9.0, "fd_val": 9.5}, {"step": 10, "fd": math.nan, "fd_val": math.nan}]
    assert metric_columns([FD], evals, ok=True)["fd_best_step"] == 0


def test_copy_shots_tiles_the_shots_and_real_images_are_neither_shots_nor_held_out():
    shots = _images(3)
    assert copy_shots(shots, 7)[:, 0, 0, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    data = PairData("toy", source=_images(4), target_pool=_images(20), reference=_images(10, first=100))
    drawn = draw_shots(data, 5, seed=0)
    real = unused_target_images(data, drawn, 100, seed=0)
    values = set(real[:, 0, 0, 0].tolist())
    assert len(real) == 15 and values.isdisjoint(drawn.images[:, 0, 0, 0].tolist())
    assert values.isdisjoint(data.reference[:, 0, 0, 0].tolist())


def test_source_seeds_repeat_every_transfer_cell_on_each_checkpoint_and_scratch_once(tmp_path):
    config = resolve_config("smoke", strategies="scratch,finetune", seeds=(0, 1), source_seeds=2)
    plan = plan_run(config, load_plugins(), tmp_path)
    cells = [(shots, seed, method.label, source) for shots, seed, method, source in plan.cells()]
    assert cells == [(100, 0, "scratch", NO_SOURCE), (100, 0, "finetune", 0), (100, 0, "finetune", 1),
                     (100, 1, "scratch", NO_SOURCE), (100, 1, "finetune", 0), (100, 1, "finetune", 1)]
    assert plan.shipped is None  # one shipped checkpoint is not a sample of sources: all are pretrained


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    """``--source-seeds 2 --seeds 2`` on the smoke profile, run one seed at a time into one folder (a resume)."""
    out = tmp_path_factory.mktemp("sources") / "run"
    args = ["run", "--strategies", "scratch,finetune", "--profile", "smoke", "--source-seeds", "2", "--out", str(out)]
    first = run_cli(*args, "--seeds", "1")
    second = run_cli(*args, "--seeds", "2")
    return out, first, second


def test_two_source_seeds_run_resume_and_record_each_source(two_sources):
    out, first, second = two_sources
    assert first.code == 0, first.stderr
    assert second.code == 0, second.stderr
    assert "resume: 3 finished cells" in second.stderr
    results = read_results(out)
    cells = results.cells
    assert sorted(cells.loc[cells["strategy"] == "finetune", "source_seed"].tolist()) == [0, 0, 1, 1]
    assert cells.loc[cells["strategy"] == "scratch", "source_seed"].tolist() == [NO_SOURCE, NO_SOURCE]
    assert [source["seed"] for source in results.manifest["sources"]] == [0, 1]
    keys = cells.loc[cells["strategy"] == "finetune", ["seed", "source_seed"]]
    assert not keys.duplicated().any()
    # the two checkpoints differ, so the same seed's cells differ between them
    seed0 = cells[(cells["strategy"] == "finetune") & (cells["seed"] == 0)].set_index("source_seed")
    assert seed0.loc[0, "fd_final"] != seed0.loc[1, "fd_final"]


def test_reference_rows_are_scored_beside_the_cells_once_per_shots_and_seed(two_sources):
    out, _, _ = two_sources
    results = read_results(out)
    references = results.references
    kinds = references.groupby(["seed", "reference"]).size().to_dict()
    assert kinds == {(0, "copy-shots"): 1, (0, "real"): 1, (0, "source"): 2,
                     (1, "copy-shots"): 1, (1, "real"): 1, (1, "source"): 2}
    assert not set(references["reference"]) & set(results.cells["strategy"])
    for path in references["samples"]:
        assert (out / path).is_file()
    # real images score far closer to the held-out images than the untrained smoke source does
    fd = references.groupby("reference")["fd_final"].mean()
    assert fd["real"] < fd["source"]
    # the source row is the finetune cell's starting point: its step-0 FD, from the same noise and weights
    evals = results.evals
    start = evals[(evals["strategy"] == "finetune") & (evals["step"] == 0)].set_index(["seed", "source_seed"])["fd"]
    source = references[references["reference"] == "source"].set_index(["seed", "source_seed"])["fd_final"]
    pd.testing.assert_series_equal(start.sort_index(), source.sort_index(), check_names=False, rtol=1e-3)


def test_the_manifest_records_the_split_and_evals_hold_the_validation_fd(two_sources):
    out, _, _ = two_sources
    results = read_results(out)
    assert results.manifest["split"] == {"validation": 200, "test": 200}
    assert results.evals["fd_val"].notna().all()
    fd = next(record for record in results.manifest["metrics"] if record["name"] == "fd")
    assert fd["select_by"] == "fd_val"


MEMORISER = Path(__file__).parent / "plugins" / "memoriser_plugin.py"


@pytest.fixture(scope="module")
def memoriser_run(tmp_path_factory):
    """A generator that only reproduces its 10 shots beside ``finetune`` from the shipped source (smoke budget)."""
    out = tmp_path_factory.mktemp("memoriser") / "run"
    result = run_cli("run", "--plugin", str(MEMORISER), "--strategies", "memorise,finetune", "--profile", "smoke",
                     "--width", "32", "--ema-beta", "0", "--shots", "10", "--out", str(out))
    return out, result


def test_a_generator_that_copies_its_shots_is_flagged_and_less_diverse_than_finetune(memoriser_run):
    out, result = memoriser_run
    assert result.code == 0, result.stderr
    cells = read_results(out).cells.set_index("strategy")
    copier, finetune = cells.loc["memorise"], cells.loc["finetune"]
    assert is_copying(copier["copying"]) and not is_copying(finetune["copying"])
    assert copier["diversity"] < 0.01 * finetune["diversity"]
    assert copier["recall"] < finetune["recall"]
    # the trap: FD alone ranks the copier first
    assert copier["fd_final"] < finetune["fd_final"]
    # and the reader is told, on the terminal and above the summary's table
    warning = "COPYING: memorise at 10 shots has C_T ="
    assert warning in result.stdout
    summary = (out / "summary.md").read_text()
    assert f"**{warning}" in summary and summary.index(warning) < summary.index("\n|")
    assert "finetune at 10 shots" not in summary
