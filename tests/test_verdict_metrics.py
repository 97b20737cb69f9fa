"""Precision, recall, data copying and diversity: known values on constructed features, and their registration."""

from __future__ import annotations

import math

import pytest
import torch

from tganbench.metric import Evaluation, MetricContext
from tganbench.metrics.verdicts import (
    COPYING,
    COPYING_THRESHOLD,
    DIVERSITY,
    PRECISION,
    RECALL,
    data_copying,
    intra_cluster_distance,
    is_copying,
    kmeans,
    mann_whitney_z,
    precision_recall,
)
from tganbench.plugins import load_plugins


def gaussian(n: int, d: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """``n`` points of N(shift, scale^2 I) in ``d`` dimensions, float64, from their own seed."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=generator, dtype=torch.float64) * scale + shift


def line(*values: float) -> torch.Tensor:
    """Points on a line, as (N, 1) features."""
    return torch.tensor(values, dtype=torch.float64).unsqueeze(1)


# precision and recall


def test_samples_equal_to_the_real_images_have_full_precision_and_recall():
    real = gaussian(300, 8, seed=0)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)


def test_samples_far_from_every_real_image_have_no_precision_and_no_recall():
    assert precision_recall(gaussian(300, 8, seed=0), gaussian(300, 8, seed=1, shift=100.0)) == (0.0, 0.0)


def test_a_tight_cluster_inside_the_real_images_is_precise_but_covers_little():
    precision, recall = precision_recall(gaussian(500, 2, seed=0), gaussian(500, 2, seed=1, scale=0.05))
    assert precision > 0.95
    assert recall < 0.2


def test_precision_and_recall_by_hand_on_a_line():
    # k=1: each real point's ball reaches its nearest real neighbour: radii 1, 1, 1, 1, 7.
    real = line(0, 1, 2, 3, 10)
    # 0.5 lies in the ball of 0, 5 in the ball of 10, 20 in none.
    assert precision_recall(real, line(0.5, 20, 5), k=1)[0] == pytest.approx(2 / 3)
    # Fake radii 1, 1, 3.5: 0, 1 and 2 are near 0.5 or 1.5, 3 is within 3.5 of 5, 10 is not.
    assert precision_recall(real, line(0.5, 1.5, 5), k=1) == pytest.approx((1.0, 0.8))


def test_precision_and_recall_are_nan_with_no_more_points_than_neighbours():
    assert all(math.isnan(value) for value in precision_recall(line(0, 1, 2), line(0, 1, 2, 3)))


# data copying


def test_mann_whitney_z_by_hand():
    # Pairs (g, h) with g > h: (3, 2) counts 1, the tie (2, 2) one half: U = 1.5 of m n = 6 pairs.
    z = mann_whitney_z(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0]))
    assert z == pytest.approx((1.5 - 3) / math.sqrt(6 * 6 / 12))


def test_mann_whitney_z_matches_scipys_u():
    from scipy.stats import mannwhitneyu

    generated, held_out = gaussian(40, 1, seed=0).squeeze(1), gaussian(30, 1, seed=1, shift=0.3).squeeze(1)
    u = mannwhitneyu(generated.numpy(), held_out.numpy()).statistic
    assert mann_whitney_z(generated, held_out) == pytest.approx((u - 600) / math.sqrt(1200 * 71 / 12))


def test_copies_of_the_training_shots_are_flagged_as_copying():
    train, held_out = gaussian(50, 16, seed=0), gaussian(1000, 16, seed=1)
    copies = train.repeat(20, 1) + gaussian(1000, 16, seed=2, scale=0.01)
    value = data_copying(train, held_out, copies)
    assert value < COPYING_THRESHOLD
    assert is_copying(value)


def test_samples_like_the_held_out_images_are_not_copying():
    train, held_out, generated = gaussian(50, 16, seed=0), gaussian(1000, 16, seed=1), gaussian(1000, 16, seed=2)
    value = data_copying(train, held_out, generated)
    assert abs(value) < 2
    assert not is_copying(value)


def test_samples_farther_from_the_shots_than_real_images_score_positive():
    train, held_out = gaussian(50, 16, seed=0), gaussian(1000, 16, seed=1)
    assert data_copying(train, held_out, gaussian(1000, 16, seed=2, scale=1.5)) > 3


def test_data_copying_is_nan_when_no_cell_has_enough_generated_points():
    train, held_out = gaussian(50, 16, seed=0), gaussian(1000, 16, seed=1)
    assert math.isnan(data_copying(train, held_out, gaussian(4, 16, seed=2)))


def test_the_copying_flag():
    assert is_copying(-3.5)
    assert not is_copying(-2.5)
    assert not is_copying(math.nan)


def test_kmeans_recovers_well_separated_blobs_deterministically():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    points = centres.repeat_interleave(30, dim=0) + gaussian(90, 2, seed=0, scale=0.1)
    for seed in range(5):
        found = kmeans(points, 3, seed=seed)
        assert torch.equal(found, kmeans(points, 3, seed=seed))
        nearest = torch.cdist(centres, found).min(dim=1)
        assert nearest.values.max() < 0.1
        assert len(set(nearest.indices.tolist())) == 3


# diversity


def test_samples_identical_to_their_shot_have_no_diversity():
    shots = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    assert intra_cluster_distance(shots, shots.repeat(5, 1)) == 0.0


def test_diversity_is_the_mean_over_clusters_of_the_mean_pairwise_distance():
    shots = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]], dtype=torch.float64)
    radius = 4 / math.sqrt(3)  # an equilateral triangle of side 4 around the second shot
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    triangle = shots[1] + radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    pair = shots[0] + torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)  # distance 2
    alone = shots[2:] + 0.5  # a cluster of one is skipped
    generated = torch.cat([pair, triangle, alone])
    # Clusters weigh equally (2 and 4), not pairs ((2 + 3 * 4) / 4 = 3.5).
    assert intra_cluster_distance(shots, generated) == pytest.approx(3.0)


def test_diversity_is_nan_without_a_cluster_of_two():
    shots = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    assert math.isnan(intra_cluster_distance(shots, shots + 0.5))


# the metrics


def test_the_four_metrics_are_registered_as_final_only_built_ins():
    metrics = load_plugins().metrics
    for name in ("precision", "recall", "copying", "diversity"):
        assert metrics[name].plugin == "tganbench.metrics.verdicts"
        assert metrics[name].obj.every_evaluation is False
        assert metrics[name].obj.description


class StubEvaluator:
    """The two things these metrics ask of an evaluator: the reference features and ``features(images)``."""

    def __init__(self, reference_features: torch.Tensor) -> None:
        self.reference_features = reference_features

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Features are the images, flattened, as float64."""
        return images.flatten(1).double()


def evaluation(shots: torch.Tensor | None) -> Evaluation:
    """A final evaluation of 400 samples against 400 reference images, with ``shots`` as the training images."""
    context = MetricContext(StubEvaluator(gaussian(400, 8, seed=0)), torch.zeros(0), None, shots)
    return Evaluation(gaussian(400, 8, seed=1), step=10, final=True, context=context)


def test_compute_returns_each_metrics_columns():
    shots = gaussian(10, 8, seed=2)
    for metric in (PRECISION, RECALL, COPYING, DIVERSITY):
        values = metric.compute(evaluation(shots))
        assert list(values) == list(metric.columns)
        assert all(math.isfinite(value) for value in values.values()), metric.name


def test_without_shots_the_shot_based_metrics_are_nan():
    assert math.isnan(COPYING.compute(evaluation(None))["copying"])
    assert math.isnan(DIVERSITY.compute(evaluation(None))["diversity"])
    assert math.isfinite(PRECISION.compute(evaluation(None))["precision"])
