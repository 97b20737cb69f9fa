"""Speed of the other phases: a full evaluation (FD + KID) and source pretraining throughput.

Not part of the test run: ``pytest benchmarks/ --benchmark-only``. On a fixed
runner, gate on it with ``--benchmark-autosave`` once and then
``--benchmark-compare --benchmark-compare-fail=median:15%``.
"""

from __future__ import annotations

import torch

from tganbench.config import resolve_config
from tganbench.data.embedded import ShapesPair
from tganbench.metrics.evaluator import Evaluator
from tganbench.metrics.extractors import tganbench_register_feature_extractors
from tganbench.models import ModelConfig, build_models
from tganbench.cell import evaluation_noise
from tganbench.source import SourcePretraining
from tganbench.train import sample_images, train

SHAPES = ShapesPair("shapes", "disk", "triangle")
QUICK = resolve_config("quick").for_pair(SHAPES.symmetries)
CPU = torch.device("cpu")
PAIR = SHAPES.load(QUICK.resolution)
MODEL = ModelConfig(resolution=QUICK.resolution, width=QUICK.width, z_dim=QUICK.z_dim)


def test_full_evaluation(benchmark):
    """Sampling N generated images from fixed noise and scoring FD and KID against the cached reference."""
    specs = []
    tganbench_register_feature_extractors(specs.append)
    shapes = next(spec for spec in specs if spec.name == "shapes")
    evaluator = Evaluator(shapes, PAIR.reference[: QUICK.n_reference], CPU, QUICK.kid_subsets, QUICK.kid_subset_size)
    g, _ = build_models(MODEL, seed=0, device=CPU)
    noise = evaluation_noise(QUICK, 0, CPU)
    scores = benchmark.pedantic(lambda: evaluator.score(sample_images(g, noise)), rounds=5, warmup_rounds=1)
    benchmark.extra_info["images_per_second"] = QUICK.n_generated / benchmark.stats.stats.median
    assert set(scores) == {"fd", "kid_mean", "kid_std"}


def test_source_pretraining_throughput(benchmark):
    """Fifty steps of source pretraining on the embedded source images."""
    steps = 50
    config = QUICK.train_config(steps)

    def pretrain():
        g, d = build_models(MODEL, seed=0, device=CPU)
        return train(g, d, SourcePretraining(), PAIR.source, config, seed=0)

    result = benchmark.pedantic(pretrain, rounds=3, warmup_rounds=1)
    benchmark.extra_info["steps_per_second"] = steps / result.train_seconds
