"""``finetune``'s ``lr``: TransferGAN's 1e-5 on request, the run's learning rate by default."""

from __future__ import annotations

import torch

from tganbench.data.shapes import render_shapes
from tganbench.models import ModelConfig, build_models
from tganbench.plugins import load_plugins
from tganbench.strategies.finetune import Finetune
from tganbench.strategy import parse_strategies
from tganbench.train import TrainConfig, train


class RecordingFinetune(Finetune):
    """``finetune`` that notes the learning rates of the optimizers the loop built for it."""

    def prepare(self, state) -> None:
        """Note each optimizer's per-group learning rates."""
        self.rates = {name: [group["lr"] for group in opt.param_groups]
                      for name, opt in (("g", state.g_opt), ("d", state.d_opt))}


def _train(spec: str) -> tuple[RecordingFinetune, dict[str, float]]:
    parsed = parse_strategies(spec, {name: entry.obj for name, entry in load_plugins().strategies.items()})[0]
    strategy = RecordingFinetune(**parsed.overrides)
    g, d = build_models(ModelConfig(width=8), 0, torch.device("cpu"))
    images = render_shapes("triangle", 16, 32, seed=3)
    result = train(g, d, strategy, images, TrainConfig(steps=1, batch_size=8, lr=2e-4), seed=0)
    return strategy, result.optimizer


def test_finetune_lr_sets_both_adam_optimizers():
    strategy, settings = _train("finetune[lr=1e-5]")
    assert strategy.label == "finetune[lr=1e-05]"
    assert settings == {"lr": 1e-5, "beta1": 0.5, "beta2": 0.999}
    assert strategy.rates == {"g": [1e-5], "d": [1e-5]}


def test_plain_finetune_keeps_the_runs_lr():
    strategy, settings = _train("finetune")
    assert strategy.label == "finetune"
    assert settings["lr"] == 2e-4
    assert strategy.rates == {"g": [2e-4], "d": [2e-4]}
