"""Time per training step of every method at the quick profile's settings: what a method costs against finetune.

A method is a built-in strategy alone, or ``scratch``, ``finetune`` or ``freeze-d`` crossed with a
built-in augmentation (the comparison set's grid). Each round trains the quick profile's models,
loaded with one set of "source" weights, for ``STEPS`` steps on 100 shots; the strategy's
``prepare`` (EWC's Fisher) is counted, as in a cell, so a fixed cost of a strategy weighs more in
these few steps than in a 2,000-step cell.

Not part of the test run: ``pytest benchmarks/test_train_step.py --benchmark-only``. For the
ratios against finetune, add ``--benchmark-json FILE`` and divide each method's best time by finetune's.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from tganbench.config import resolve_config
from tganbench.data.shapes import render_shapes
from tganbench.plan import resolve_methods, resolve_model, resolve_pair
from tganbench.plugins import load_plugins
from tganbench.train import train

REGISTRY = load_plugins()
_QUICK = resolve_config("quick")
QUICK = _QUICK.for_pair(getattr(resolve_pair(_QUICK, REGISTRY), "symmetries", ()))
STEPS = 40
LABELS = list(REGISTRY.strategies) + [
    f"{strategy}+{augmentation}" for strategy in ("scratch", "finetune", "freeze-d") for augmentation in REGISTRY.augmentations
]


@pytest.mark.parametrize("label", LABELS)
def test_training_steps(benchmark, label):
    model = resolve_model(QUICK, REGISTRY)
    methods, skipped = resolve_methods(replace(QUICK, strategies=label), REGISTRY, model)
    if not methods:
        pytest.skip("; ".join(skipped))
    method = methods[0]
    images = render_shapes("triangle", 100, QUICK.resolution, seed=3)
    source_g, source_d = model.build(1, torch.device("cpu"))
    source = {"g": source_g.state_dict(), "d": source_d.state_dict()}

    def one_round():
        g, d = model.build(0, torch.device("cpu"))
        if method.strategy.from_source:
            g.load_state_dict(source["g"])
            d.load_state_dict(source["d"])
        augmentation = method.augmentation.fresh_copy() if method.augmentation else None
        return train(g, d, method.strategy.fresh_copy(), images, QUICK.train_config(STEPS), seed=0, quiet=True,
                     augmentation=augmentation, source_weights=source)

    result = benchmark.pedantic(one_round, rounds=2, warmup_rounds=1)
    benchmark.extra_info["steps_per_second"] = STEPS / result.train_seconds
