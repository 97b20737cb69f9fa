"""Speed of ten training steps per built-in strategy at the quick profile's settings.

Not part of the test run: ``pytest benchmarks/ --benchmark-only``.
"""

from __future__ import annotations

import pytest
import torch

from tganbench.config import resolve_config
from tganbench.data.shapes import render_shapes
from tganbench.models import ModelConfig, build_models
from tganbench.plugins import load_plugins
from tganbench.train import TrainConfig, train

QUICK = resolve_config("quick")
STRATEGIES = list(load_plugins().strategies)


@pytest.mark.parametrize("name", STRATEGIES)
def test_ten_training_steps(benchmark, name):
    registry = load_plugins()
    images = render_shapes("triangle", QUICK.shots[0], QUICK.resolution, seed=3)
    model = ModelConfig(resolution=QUICK.resolution, width=QUICK.width, z_dim=QUICK.z_dim)
    g, d = build_models(model, seed=0, device=torch.device("cpu"))
    strategy = registry.strategies[name].obj()
    steps = 10
    config = TrainConfig(steps=steps, batch_size=QUICK.batch_size, lr=QUICK.lr)
    result = benchmark.pedantic(lambda: train(g, d, strategy.fresh_copy(), images, config, seed=0), rounds=3)
    benchmark.extra_info["steps_per_second"] = steps / result.train_seconds
