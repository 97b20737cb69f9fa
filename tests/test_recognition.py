"""The recognition measure: it sees shapes through GAN-like degradations and sees nothing in noise."""

from __future__ import annotations

import pytest
import torch

from tganbench.data.shapes import SHAPES, render_shapes
from tganbench.metrics.recognition import CLASSES, class_shares, recognised, recognition_scores
from tganbench.metrics.train_recognition import blur, resample, warp

UNSEEN_SEED = 4242  # neither the pairs, the extractors' training nor their validation render with it


def _degraded(images: torch.Tensor, degradation) -> torch.Tensor:
    out = degradation(images.float() / 255, torch.Generator().manual_seed(0))
    return (out.clamp(0, 1) * 255).round().to(torch.uint8)


@pytest.mark.parametrize("shape", SHAPES)
def test_blurred_renders_are_recognised_as_their_shape(shape):
    images = render_shapes(shape, 200, 32, seed=UNSEEN_SEED)
    strong_blur = lambda x, gen: blur(x, gen, torch.full((len(x),), 1.2))  # noqa: E731
    assert recognised(_degraded(images, strong_blur), shape) >= 0.95
    assert recognised(images, shape) >= 0.98


def test_resampled_and_warped_triangles_are_still_triangles():
    images = render_shapes("triangle", 200, 32, seed=UNSEEN_SEED)
    assert recognised(_degraded(images, resample), "triangle") >= 0.95
    assert recognised(_degraded(images, warp), "triangle") >= 0.95


def test_noise_is_nothing_in_particular():
    generator = torch.Generator().manual_seed(UNSEEN_SEED)
    white = torch.randint(0, 256, (300, 3, 32, 32), generator=generator, dtype=torch.uint8)
    grey = torch.full((50, 3, 32, 32), 128, dtype=torch.uint8)
    shares = class_shares(torch.cat([white, grey]))
    assert shares["none"] >= 0.95
    assert max(shares[shape] for shape in SHAPES) <= 0.05


def test_other_resolutions_are_recognised():
    for resolution in (16, 64):
        assert recognised(render_shapes("disk", 100, resolution, seed=UNSEEN_SEED), "disk") >= 0.9


def test_recognition_scores_name_target_and_source():
    triangles = render_shapes("triangle", 100, 32, seed=UNSEEN_SEED)
    assert recognition_scores(triangles, ("disk", "triangle")) == {"recognised": 1.0, "recognised_source": 0.0}
    assert set(class_shares(triangles)) == set(CLASSES)
    with pytest.raises(ValueError, match="unknown shape family"):
        recognised(triangles, "hexagon")
