"""Each strategy freezes exactly what its reference card says: frozen is bit-identical, trained has moved."""

from __future__ import annotations

import copy

import pytest
import torch

from tganbench.data.shapes import render_shapes
from tganbench.models import ModelConfig, build_models
from tganbench.plugins import load_plugins
from tganbench.strategy import parse_strategies
from tganbench.train import TrainConfig, train

CONFIG = ModelConfig(resolution=32, width=8, z_dim=16)


def _norm_affine_names(g: torch.nn.Module) -> set[str]:
    """State-dict names of the scale and shift of G's BatchNorm layers."""
    return {
        f"g.{module_name}.{param}"
        for module_name, module in g.named_modules()
        if isinstance(module, torch.nn.BatchNorm2d)
        for param in ("weight", "bias")
    }


# For each strategy: which state-dict entries (parameters and buffers) must stay bit-identical,
# given the entry's name ("g.stages.<stage>...." / "d.stages.<stage>....") and G's norm scale/shift names.
EXPECTED_FROZEN = {
    "scratch": lambda name, norm: False,
    "finetune": lambda name, norm: False,
    "freeze-d": lambda name, norm: name.startswith(("d.stages.32x32.", "d.stages.16x16.")),
    "freeze-d[layers=4]": lambda name, norm: name.startswith("d.") and not name.startswith("d.stages.logit."),
    "freeze-g": lambda name, norm: name.startswith("g.stages.4x4."),
    "freeze-g[layers=3]": lambda name, norm: name.startswith(("g.stages.4x4.", "g.stages.8x8.", "g.stages.16x16.")),
    "batchstat": lambda name, norm: name not in norm,
}


@pytest.mark.parametrize("spec", list(EXPECTED_FROZEN))
def test_strategy_freezes_exactly_what_it_claims(spec):
    registry = load_plugins()
    strategy = parse_strategies(spec, {n: e.obj for n, e in registry.strategies.items()})[0]
    g, d = build_models(CONFIG, seed=0, device=torch.device("cpu"))
    before = {f"g.{k}": v.clone() for k, v in g.state_dict().items()}
    before.update({f"d.{k}": v.clone() for k, v in d.state_dict().items()})

    images = render_shapes("square", 64, 32, seed=5)
    result = train(g, d, strategy, images, TrainConfig(steps=3, batch_size=16), seed=0)
    assert result.status == "ok"

    after = {f"g.{k}": v for k, v in g.state_dict().items()}
    after.update({f"d.{k}": v for k, v in d.state_dict().items()})
    frozen_rule, norm = EXPECTED_FROZEN[spec], _norm_affine_names(g)
    assert len(norm) == 8  # 4 BatchNorm layers at 32x32
    for name, old in before.items():
        if frozen_rule(name, norm):
            assert torch.equal(old, after[name]), f"{spec}: {name} should be frozen but changed"
        elif old.numel() > 1:  # spectral norm's vector of a one-row weight is a constant sign, not state
            assert not torch.equal(old, after[name]), f"{spec}: {name} should train but did not change"


def test_batchstat_norm_statistics_are_the_source_ones():
    """BSA adapts scale/shift only: running statistics must not drift toward the target."""
    registry = load_plugins()
    strategy = registry.strategies["batchstat"].obj()
    g, d = build_models(CONFIG, seed=0, device=torch.device("cpu"))
    means = {k: v.clone() for k, v in g.state_dict().items() if "running" in k}
    train(g, d, strategy, render_shapes("square", 64, 32, seed=5), TrainConfig(steps=5, batch_size=16), seed=0)
    for name, value in means.items():
        assert torch.equal(value, g.state_dict()[name]), name


def test_freezing_leaves_the_source_weights_object_untouched():
    """Training a copy must not write into the cached source state dict the next cell reuses."""
    g, d = build_models(CONFIG, seed=0, device=torch.device("cpu"))
    source = copy.deepcopy(g.state_dict())
    g2, d2 = build_models(CONFIG, seed=1, device=torch.device("cpu"))
    g2.load_state_dict(source)
    registry = load_plugins()
    train(g2, d2, registry.strategies["finetune"].obj(), render_shapes("square", 64, 32, 5), TrainConfig(steps=2, batch_size=16), 0)
    for name, value in g.state_dict().items():
        assert torch.equal(value, source[name])
