"""``--cuda-graph``: a replayed step computes what an eager step computes.

What makes that possible is tested everywhere: the step's random draws are
recorded once and pre-drawn before every replay, in the eager order. On a
machine without CUDA, ``GraphedStep`` runs the step eagerly on those pre-drawn
buffers instead of replaying a graph, and must give exactly the eager numbers.
The capture itself needs a CUDA device; those tests are skipped elsewhere.
"""

from __future__ import annotations

import functools
import json

import pytest
import torch

import tganbench.train as train_module
from conftest import run_cli
from tganbench.augmentations.diffaugment import DiffAugment
from tganbench.data.shapes import render_shapes
from tganbench.models import ModelConfig, ModelSpec, build_models
from tganbench.models.stylegan2 import StyleGAN2
from tganbench.strategies.adafm import AdaFM
from tganbench.strategies.batchstat import BatchStat
from tganbench.strategies.ewc import EWC
from tganbench.strategy import Strategy
from tganbench.train import TrainConfig, TrainState, train

MODEL = ModelConfig(resolution=32, width=8, z_dim=32)
# The adversarial step, a replaced step, a G-loss term computed from prepare's tensors, and modules
# that prepare adds to G.
STRATEGIES = [Strategy, BatchStat, functools.partial(EWC, fisher_samples=16), AdaFM]
STRATEGY_IDS = ["adversarial", "batchstat", "ewc", "adafm"]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="capturing a CUDA graph needs a CUDA device")


def _train(strategy: Strategy, cuda_graph: bool, device: str, steps: int = 10, augmentation=None, model=None,
           **recipe):
    if model is None:
        g, d = build_models(MODEL, seed=0, device=torch.device(device))
    else:
        g, d = model.build(0, torch.device(device))
    source = {"g": {k: v.clone() for k, v in g.state_dict().items()},
              "d": {k: v.clone() for k, v in d.state_dict().items()}}
    images = render_shapes("triangle", 100, 32, seed=3).to(device)
    config = TrainConfig(steps=steps, batch_size=16, cuda_graph=cuda_graph, check_every=steps, **recipe)
    result = train(g, d, strategy, images, config, seed=5, augmentation=augmentation, source_weights=source)
    return result, g, d


def _assert_same_training(device: str, strategy: type[Strategy], recipe: dict | None = None, **tolerance) -> None:
    recipe = dict(recipe or {})
    augment = recipe.pop("augment", None)
    model = recipe.pop("model", None)
    eager, g1, d1 = _train(strategy(), False, device, augmentation=augment and augment(), model=model, **recipe)
    graphed, g2, d2 = _train(strategy(), True, device, augmentation=augment and augment(), model=model, **recipe)
    assert eager.losses.keys() == graphed.losses.keys()
    for name in eager.losses:
        torch.testing.assert_close(graphed.losses[name], eager.losses[name], msg=name, **tolerance)
    for a, b in ((g1, g2), (d1, d2)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            torch.testing.assert_close(y, x, msg=name, **tolerance)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=STRATEGY_IDS)
def test_steps_on_pre_drawn_random_numbers_equal_eager_steps_exactly(strategy):
    _assert_same_training("cpu", strategy, rtol=0, atol=0)


def test_stylegan2_steps_on_pre_drawn_random_numbers_equal_eager_steps_exactly():
    # its noise inputs are buffers, so a StyleGAN2 step draws only through the state and can be captured
    model = ModelSpec(StyleGAN2(width=8, channel_max=32, n_mlp=2), resolution=32, z_dim=32)
    _assert_same_training("cpu", Strategy, {"model": model, "augment": DiffAugment}, rtol=0, atol=0)


def test_augmented_steps_with_r1_on_pre_drawn_random_numbers_equal_eager_steps_exactly():
    """DiffAugment's and the real images' symmetries' draws and R1's double backward replay like the plain step."""
    recipe = {"augment": DiffAugment, "r1_gamma": 1.0, "ema_beta": 0.99, "real_symmetries": ("xflip", "rot90")}
    _assert_same_training("cpu", Strategy, recipe, rtol=0, atol=0)


class UsesEverySeam(Strategy):
    """A D-loss term on differentiable reals, a latent transform, and a G term against the frozen source G."""

    name = "uses-every-seam"
    real_gradient = True

    def prepare(self, state: TrainState) -> None:
        state.latent_transform = torch.nn.Linear(state.g.z_dim, state.g.z_dim).to(state.images.device)
        torch.nn.init.eye_(state.latent_transform.weight)  # deterministic, not from the global RNG
        torch.nn.init.zeros_(state.latent_transform.bias)
        state.g_opt.add_param_group({"params": list(state.latent_transform.parameters())})

    def discriminator_loss(self, state, real, real_logits, fake, fake_logits):
        (gradient,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        return 0.5 * gradient.square().sum(dim=(1, 2, 3)).mean()

    def generator_loss(self, state, fake, z):
        return 0.1 * (fake - state.g_source(z)).abs().mean()


def test_a_step_using_every_new_seam_on_pre_drawn_random_numbers_equals_eager_steps_exactly():
    _assert_same_training("cpu", UsesEverySeam, {"augment": DiffAugment}, rtol=0, atol=0)


class DrawsEveryOtherStep(Strategy):
    """A step whose random draws depend on the step number: it cannot be captured once."""

    name = "draws-every-other-step"
    parameters = {"parity": 1}

    def step(self, state: TrainState) -> dict[str, torch.Tensor]:
        if state.step % 2 == self.params["parity"]:
            state.randn(3)
        return super().step(state)


@pytest.mark.parametrize("parity", [1, 0], ids=["fewer-draws-than-recorded", "other-draws-than-recorded"])
def test_a_step_whose_draws_change_is_refused_with_a_clear_error(parity):
    with pytest.raises(RuntimeError, match="random draws differ from the previous step's"):
        _train(DrawsEveryOtherStep(parity=parity), cuda_graph=True, device="cpu")


@needs_cuda
@pytest.mark.parametrize("strategy", STRATEGIES, ids=STRATEGY_IDS)
def test_replayed_graph_matches_eager_steps_on_cuda(strategy, monkeypatch):
    """Replays compute what eager steps compute, up to float rounding.

    Only the capture may differ between the two runs: both use the capturable
    Adam (eager runs otherwise use the fused one, whose rounding differs) and
    cuDNN's deterministic kernels, chosen the same way in both.
    """
    choose_adam = train_module._adam
    monkeypatch.setattr(train_module, "_adam", lambda params, settings, cuda_graph: choose_adam(params, settings, True))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    _assert_same_training("cuda", strategy, rtol=1e-3, atol=1e-4)


@needs_cuda
def test_a_replayed_stylegan2_step_matches_eager_steps_on_cuda(monkeypatch):
    """As above, with StyleGAN2's modulated convolutions and DiffAugment in the captured step."""
    choose_adam = train_module._adam
    monkeypatch.setattr(train_module, "_adam", lambda params, settings, cuda_graph: choose_adam(params, settings, True))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    model = ModelSpec(StyleGAN2(width=8, channel_max=32, n_mlp=2), resolution=32, z_dim=32)
    _assert_same_training("cuda", Strategy, {"model": model, "augment": DiffAugment}, rtol=1e-3, atol=1e-4)


@needs_cuda
def test_the_option_reaches_the_manifest(tmp_path):
    out = tmp_path / "graphed"
    result = run_cli("run", "--profile", "smoke", "--strategies", "finetune", "--cuda-graph", "--out", str(out))
    assert result.code == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["config"]["cuda_graph"] is True
