"""``adafm``: frozen kernels modulated by a trainable scale and shift per (output, input) channel pair."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from tganbench.data.shapes import render_shapes
from tganbench.models import ModelConfig, build_models
from tganbench.models.stylegan2 import StyleGAN2
from tganbench.strategies.adafm import AdaFM, KernelModulation
from tganbench.train import TrainConfig, TrainState, train

MODEL = ModelConfig(resolution=32, width=8, z_dim=16)
IMAGES = render_shapes("triangle", 16, 32, seed=3)
CPU = torch.device("cpu")


def _models() -> tuple[nn.Module, nn.Module, dict[str, dict[str, torch.Tensor]]]:
    g, d = build_models(MODEL, seed=0, device=CPU)
    source = {"g": {k: v.clone() for k, v in g.state_dict().items()}, "d": {k: v.clone() for k, v in d.state_dict().items()}}
    return g, d, source


def test_the_modulated_kernel_is_gamma_times_w_plus_beta_per_channel_pair_on_a_hand_built_case():
    conv = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(2, 2, 1, 1))
    modulation = KernelModulation(conv.weight)
    parametrize.register_parametrization(conv, "weight", modulation)
    with torch.no_grad():
        modulation.gamma.copy_(torch.tensor([[2.0, 0.5], [1.0, -1.0]]).view(2, 2, 1, 1))
        modulation.beta.copy_(torch.tensor([[0.0, 1.0], [-3.0, 0.25]]).view(2, 2, 1, 1))
    expected = torch.tensor([[2.0 * 1 + 0, 0.5 * 2 + 1], [1.0 * 3 - 3, -1.0 * 4 + 0.25]]).view(2, 2, 1, 1)
    assert torch.equal(conv.weight, expected)
    x = torch.tensor([1.0, 10.0]).view(1, 2, 1, 1)  # output o = sum over inputs i of kernel[o, i] * x[i]
    assert torch.equal(conv(x).flatten(), torch.tensor([2.0 + 2.0 * 10, 0.0 - 3.75 * 10]))


def test_a_shift_is_added_to_every_tap_of_a_3x3_kernel_and_the_bias_is_kept():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    kernel = conv.weight.detach().clone()
    modulation = KernelModulation(conv.weight)
    parametrize.register_parametrization(conv, "weight", modulation)
    with torch.no_grad():
        modulation.gamma.fill_(3.0)
        modulation.beta.fill_(0.5)
    x = torch.randn(2, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(conv(x), F.conv2d(x, 3.0 * kernel + 0.5, conv.bias, padding=1))


def test_prepare_wraps_the_convolutions_of_the_stages_nearest_the_image_and_gamma_1_beta_0_reproduces_the_source():
    g, d, source = _models()
    reference = copy.deepcopy(g).eval()
    strategy = AdaFM()
    for module in strategy.frozen(g, d):
        module.requires_grad_(False)
    g_opt = torch.optim.Adam([p for p in g.parameters() if p.requires_grad])
    strategy.prepare(TrainState(g, d, g_opt, None, IMAGES, 8, torch.Generator().manual_seed(0)))
    wrapped = {name for name, m in g.named_modules() if parametrize.is_parametrized(m, "weight")}
    assert wrapped == {"stages.16x16.1", "stages.32x32.1", "stages.rgb.0"}  # layers=3: the three stages nearest the image
    assert len(g_opt.param_groups) == 2 and len(g_opt.param_groups[1]["params"]) == 6  # a gamma and a beta each
    z = torch.randn(8, MODEL.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(g.eval()(z), reference(z))


def test_frozen_kernels_and_norms_stay_bit_identical_while_gamma_and_beta_train_and_the_average_sees_them():
    g, d, source = _models()
    strategy = AdaFM()
    result = train(g, d, strategy, IMAGES, TrainConfig(steps=5, batch_size=8, ema_beta=0.9), seed=0,
                   source_weights=source)
    assert result.status == "ok"
    for wrapper in strategy.modulated:
        assert not torch.equal(wrapper.gamma, torch.ones_like(wrapper.gamma))
        assert not torch.equal(wrapper.beta, torch.zeros_like(wrapper.beta))
    after = g.state_dict()
    for name, value in source["g"].items():
        stage = name.split(".")[1]
        modulated_name = name.replace(".weight", ".parametrizations.weight.original")
        if stage in ("16x16", "32x32", "rgb"):
            key = modulated_name if modulated_name in after else name  # a modulated kernel is stored as `original`
            assert torch.equal(after[key], value), f"{name} should be frozen"
        elif value.is_floating_point():
            assert not torch.equal(after[name], value), f"{name} should train"
    frozen_d, trained_d = "stages.32x32.", "stages.16x16."
    assert all(torch.equal(d.state_dict()[k], v) for k, v in source["d"].items() if k.startswith(frozen_d))
    assert not torch.equal(d.state_dict()[f"{trained_d}0.parametrizations.weight.original"],
                           source["d"][f"{trained_d}0.parametrizations.weight.original"])
    # The evaluated generator is the moving average, modulated too, with averaged (not the initial) gammas.
    averaged = [m for m in result.eval_generator.modules() if isinstance(m, KernelModulation)]
    assert len(averaged) == len(strategy.modulated)
    for mean, current in zip(averaged, strategy.modulated):
        assert not torch.equal(mean.gamma, torch.ones_like(mean.gamma))
        assert not torch.equal(mean.gamma, current.gamma)


class _LinearGenerator(nn.Module):
    """A generator whose stages have no convolution."""

    z_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3 * 4 * 4))


def test_a_generator_without_convolutions_is_refused_with_the_reason():
    g, d = _LinearGenerator(), build_models(MODEL, seed=0, device=CPU)[1]
    reason = AdaFM().supports("linear", g, d)
    assert reason == "needs convolution kernels in G's stages to modulate, and linear's G has none"
    assert AdaFM().supports("dcgan", *build_models(MODEL, seed=0, device=CPU)) is None


def test_modulating_every_stage_is_refused_because_none_would_train():
    g, d = build_models(MODEL, seed=0, device=CPU)
    reason = AdaFM(layers=5).supports("dcgan", g, d)
    assert reason == "modulates the 5 G stages nearest the image and trains at least one below them, and dcgan's G has 5 stages"


def test_on_stylegan2_the_modulated_kernels_of_the_top_stages_are_modulated_and_the_rest_of_them_frozen():
    g, d = StyleGAN2(width=8, channel_max=32, n_mlp=2).build(32, 16)
    source = {"g": {k: v.clone() for k, v in g.state_dict().items()}, "d": {k: v.clone() for k, v in d.state_dict().items()}}
    reference = copy.deepcopy(g).eval()
    strategy = AdaFM()  # layers=3: 8x8, 16x16 and 32x32 of mapping, 4x4, 8x8, 16x16, 32x32
    result = train(g, d, strategy, IMAGES, TrainConfig(steps=3, batch_size=8), seed=0, source_weights=source)
    assert result.status == "ok"
    modulated = {name.rsplit(".", 1)[0] for name, m in g.named_modules() if parametrize.is_parametrized(m, "weight")}
    assert modulated == {"convs.0", "convs.1", "convs.2", "convs.3", "convs.4", "convs.5",
                         "to_rgbs.0", "to_rgbs.1", "to_rgbs.2"}
    assert [m.gamma.shape for m in strategy.modulated][:2] == [(1, 32, 32, 1, 1), (1, 32, 32, 1, 1)]
    after = g.state_dict()
    for name, value in source["g"].items():
        top = name.startswith(("convs.", "to_rgbs.", "noises."))
        key = name.replace("conv.weight", "conv.parametrizations.weight.original") if top else name
        if top:
            assert torch.equal(after[key], value), f"{name} should be frozen"
        elif value.is_floating_point():
            assert not torch.equal(after[name], value), f"{name} should train"
    for modulation in strategy.modulated:  # gamma 1 and beta 0 at the start: the source's images exactly
        with torch.no_grad():
            modulation.gamma.fill_(1.0)
            modulation.beta.zero_()
    g.load_state_dict({**after, **{k: v for k, v in source["g"].items() if not k.startswith(("convs.", "to_rgbs."))}},
                      strict=False)
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(g.eval()(z), reference(z))
