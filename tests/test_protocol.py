"""The evaluation protocol: intervals, paired differences, time to quality, nested shots, reference cache."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from tganbench.data.embedded import ShapesPair
from tganbench.data.pairs import draw_shots
from tganbench.metrics.evaluator import Evaluator
from tganbench.metrics.extractors import ExtractorSpec, tganbench_register_feature_extractors
from tganbench.metrics.reference_cache import reference_key
from tganbench.reporting.statistics import mean_interval, paired_difference
from tganbench.reporting.tables import summary_table, time_to_quality

# Student t quantile t(0.975; 2 degrees of freedom), from printed tables: 4.303.
T_975_DF2 = 4.3027

CPU = torch.device("cpu")


def _shapes_spec() -> ExtractorSpec:
    specs: list[ExtractorSpec] = []
    tganbench_register_feature_extractors(specs.append)
    return next(spec for spec in specs if spec.name == "shapes")


def test_interval_matches_a_hand_computed_example():
    # 30, 34, 41: mean 35, deviations -5, -1, 6, sample variance (25 + 1 + 36) / 2 = 31.
    mean, std, low, high = mean_interval([30, 34, 41])
    half_width = T_975_DF2 * math.sqrt(31) / math.sqrt(3)  # 13.83
    assert mean == pytest.approx(35)
    assert std == pytest.approx(math.sqrt(31))
    assert low == pytest.approx(35 - half_width, abs=1e-3)
    assert high == pytest.approx(35 + half_width, abs=1e-3)


def test_paired_difference_matches_a_hand_computed_example():
    strategy, scratch = [20, 30, 25], [50, 55, 58]
    # Differences -30, -25, -33: mean -29.333, sample variance ((-2/3)^2 + (13/3)^2 + (-11/3)^2) / 2 = 49/3.
    mean, low, high = paired_difference(strategy, scratch)
    half_width = T_975_DF2 * math.sqrt(49 / 3) / math.sqrt(3)  # 10.04
    assert mean == pytest.approx(-88 / 3)
    assert low == pytest.approx(-88 / 3 - half_width, abs=1e-3)
    assert high == pytest.approx(-88 / 3 + half_width, abs=1e-3)
    # Pairing removes the seeds' shared variance: the unpaired interval of the difference is wider.
    _, _, s_low, s_high = mean_interval(strategy)
    assert high - low < s_high - s_low


def test_intervals_need_two_values_and_skip_missing_ones():
    assert math.isnan(mean_interval([42.0])[2])
    assert mean_interval([7.0, 7.0]) == (7.0, 0.0, 7.0, 7.0)
    # A diverged cell (NaN) drops out of its pair, not the whole comparison.
    mean, low, _ = paired_difference([10.0, float("nan"), 12.0], [20.0, 21.0, 23.0])
    assert mean == pytest.approx(-10.5) and not math.isnan(low)


def _cells_and_evals() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two seeds of scratch and finetune with known curves (10 shots, pair 'p')."""
    base = {"pair": "p", "shots": 10, "status": "ok", "metric": "FD", "extractor": "x", "n_generated": 100,
            "n_reference": 50, "fd_best": 1.0, "fd_best_step": 0, "kid_mean": 0.1, "train_seconds": 2.0,
            "steps_per_second": 100.0, "eval_seconds": 0.5, "trainable_params": 10, "total_params": 10}
    cells = pd.DataFrame([
        {**base, "strategy": "scratch", "seed": 0, "fd_final": 50.0},
        {**base, "strategy": "finetune", "seed": 0, "fd_final": 30.0},
        {**base, "strategy": "scratch", "seed": 1, "fd_final": 40.0},
        {**base, "strategy": "finetune", "seed": 1, "fd_final": 44.0},
    ])
    curves = {
        ("scratch", 0): [90, 70, 50], ("finetune", 0): [60, 49, 30],
        ("scratch", 1): [90, 40, 40], ("finetune", 1): [60, 50, 44],
    }
    evals = pd.DataFrame([
        {"pair": "p", "shots": 10, "strategy": s, "seed": seed, "step": 100 * i, "train_seconds": 1.5 * i, "fd": fd}
        for (s, seed), fds in curves.items() for i, fd in enumerate(fds)
    ])
    return cells, evals


def test_time_to_quality_defaults_to_scratch_final_fd_of_the_same_seed():
    cells, evals = _cells_and_evals()
    ttq = time_to_quality(cells, evals).set_index(["strategy", "seed"])
    assert ttq.loc[("finetune", 0), "target"] == 50.0
    assert ttq.loc[("finetune", 0), "ttq_step"] == 100 and ttq.loc[("finetune", 0), "ttq_seconds"] == 1.5
    assert math.isnan(ttq.loc[("finetune", 1), "ttq_step"])  # never at or below 40
    assert ttq.loc[("scratch", 1), "ttq_step"] == 100  # scratch reaches its own final FD by step 100 here


def test_time_to_quality_with_an_explicit_target():
    cells, evals = _cells_and_evals()
    ttq = time_to_quality(cells, evals, target=60.0).set_index(["strategy", "seed"])
    assert ttq.loc[("finetune", 0), "ttq_step"] == 0  # the untrained start counts
    assert ttq.loc[("scratch", 0), "ttq_step"] == 200


def test_summary_shows_interval_paired_difference_and_not_reached():
    cells, evals = _cells_and_evals()
    table = summary_table(cells, evals).set_index("strategy")
    assert table.loc["scratch", "Δ vs scratch [95% CI]"] == "(baseline)"
    # finetune - scratch: -20 and +4, mean -8.00; the interval comes from scipy's paired t-test.
    assert table.loc["finetune", "Δ vs scratch [95% CI]"].startswith("-8.00 [")
    assert table.loc["finetune", "to target"] == "100 steps, 1.5 s (1/2 seeds)"
    assert table.loc["finetune", "FD[x] final"] == "37.00 ± 9.90"
    cells.loc[cells["strategy"] == "finetune", "fd_final"] = 99.0
    evals.loc[evals["strategy"] == "finetune", "fd"] = 99.0
    assert summary_table(cells, evals).set_index("strategy").loc["finetune", "to target"] == "not reached"


def test_shots_are_nested_deterministic_and_disjoint_from_the_reference():
    data = ShapesPair("s", "disk", "triangle", n_source=10, n_target_pool=300, n_reference=200).load(16)
    small, large = draw_shots(data, 10, seed=3), draw_shots(data, 100, seed=3)
    assert set(small.indices.tolist()) <= set(large.indices.tolist())
    assert torch.equal(draw_shots(data, 100, seed=3).images, large.images)
    assert draw_shots(data, 100, seed=4).fingerprint != large.fingerprint
    reference = {bytes(image.numpy().tobytes()) for image in data.reference}
    assert not any(bytes(image.numpy().tobytes()) in reference for image in large.images)


def test_reference_cache_key_changes_with_pair_resolution_and_extractor():
    spec = _shapes_spec()
    triangles32 = ShapesPair("a", "disk", "triangle", 10, 10, 60).load(32).reference
    network = Evaluator(spec, triangles32, CPU, 5, 20).extractor
    triangles16 = ShapesPair("a", "disk", "triangle", 10, 10, 60).load(16).reference
    squares32 = ShapesPair("b", "disk", "square", 10, 10, 60).load(32).reference
    key = reference_key(triangles32, spec, network)
    assert reference_key(triangles32, spec, network) == key
    assert reference_key(squares32, spec, network) != key
    assert reference_key(triangles16, spec, network) != key
    renamed = ExtractorSpec("other", spec.fidelity_name, spec.feature_layer, "FD", "")
    assert reference_key(triangles32, renamed, network) != key
    with torch.no_grad():
        next(network.parameters()).add_(1e-3)  # same extractor name, different weights
    assert reference_key(triangles32, spec, network) != key


def test_reference_features_are_cached_and_a_corrupt_cache_is_rebuilt(tmp_path):
    spec = _shapes_spec()
    reference = ShapesPair("a", "disk", "triangle", 10, 10, 60).load(32).reference
    lines: list[str] = []
    first = Evaluator(spec, reference, CPU, 5, 20, cache_dir=tmp_path, log=lines.append)
    second = Evaluator(spec, reference, CPU, 5, 20, cache_dir=tmp_path, log=lines.append)
    assert not first.reference_cached and second.reference_cached
    assert torch.equal(first.reference_features, second.reference_features)
    (path,) = (tmp_path / "reference-features").iterdir()
    path.write_bytes(path.read_bytes()[:100])  # truncated
    third = Evaluator(spec, reference, CPU, 5, 20, cache_dir=tmp_path, log=lines.append)
    assert not third.reference_cached
    assert torch.equal(third.reference_features, first.reference_features)
    assert any("unreadable" in line and "rebuilding" in line for line in lines)
