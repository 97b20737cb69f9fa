"""The shared recipe's options: DiffAugment on every D input, the real images' symmetries, R1, the
moving-average generator, spectral norm."""

from __future__ import annotations

import pytest
import torch

from tganbench.augmentation import parse_augmentations
from tganbench.augmentations.diffaugment import DiffAugment, color, cutout, translation
from tganbench.augmentations.symmetries import augment_reals, parse_symmetries, rot90, xflip
from tganbench.config import resolve_config
from tganbench.data.embedded import ShapesPair
from tganbench.data.shapes import render_shapes
from tganbench.errors import UsageError
from tganbench.models import ModelConfig, build_models
from tganbench.strategies.freeze_g import FreezeG
from tganbench.strategy import Strategy
from tganbench.train import TrainConfig, TrainState, ema_decay, train

MODEL = ModelConfig(resolution=32, width=8, z_dim=16)
POLICY = ("color", "translation", "cutout")


class FixedDraws:
    """Stands in for a TrainState: hands out the given draws in order (to pin an augmentation down)."""

    def __init__(self, *draws: torch.Tensor) -> None:
        self.draws = list(draws)

    def rand(self, *shape: int) -> torch.Tensor:
        return self.draws.pop(0).reshape(shape).float()

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        value = self.draws.pop(0).reshape(shape).long()
        assert 0 <= int(value.min()) and int(value.max()) < high
        return value


def test_translation_shifts_whole_pixels_and_fills_with_zeros():
    x = torch.zeros(1, 3, 32, 32)
    x[0, :, 10, 20] = 1.0
    # reach 4 pixels: draws 4 + dy and 4 + dx for a shift of (dy, dx) = (+3, -2)
    out = translation(x, FixedDraws(torch.tensor([7]), torch.tensor([2])))
    assert out[0, :, 13, 18].eq(1).all() and out.sum() == 3
    ones = translation(torch.ones(1, 3, 32, 32), FixedDraws(torch.tensor([8]), torch.tensor([0])))
    assert ones[0, 0, :4].eq(0).all()  # down by 4: the top rows are zeros
    assert ones[0, 0, :, 28:].eq(0).all()  # left by 4: the right-most columns are zeros
    assert ones[0, 0, 4:, :28].eq(1).all()


def test_cutout_zeroes_a_half_size_square():
    out = cutout(torch.ones(2, 3, 32, 32), FixedDraws(torch.tensor([16, 0]), torch.tensor([16, 31])))
    assert (out[0, 0] == 0).sum() == 16 * 16
    assert out[0, 0, 8:24, 8:24].eq(0).all()
    assert (out[1, 0] == 0).sum() == 8 * 9  # clipped at the corner


def test_color_is_per_image_and_differentiable():
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    out = color(x, FixedDraws(torch.tensor([1.0, 0.5]), torch.tensor([0.5, 0.5]), torch.tensor([0.5, 0.5])))
    torch.testing.assert_close(out[1], x[1])  # brightness 0, saturation 1, contrast 1: unchanged
    torch.testing.assert_close(out[0], x[0] + 0.5)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_policy_parsing():
    available = {"diffaugment": DiffAugment}
    for text in ("color,translation,cutout", "diffaugment", "diffaugment[policy=color,translation,cutout]"):
        (augmentation,) = parse_augmentations(text, available)
        assert augmentation.policy == POLICY
    assert parse_augmentations("none", available) == [None] == parse_augmentations("", available)
    assert [a.label if a else None for a in parse_augmentations("none,diffaugment[policy=color]", available)] == [
        None, "diffaugment[policy=color]"]
    with pytest.raises(UsageError, match="unknown policy 'colour'"):
        parse_augmentations("diffaugment[policy=colour]", available)
    with pytest.raises(UsageError, match="unknown augmentation 'colour'"):
        parse_augmentations("colour", available)


class SpyDiscriminator(torch.nn.Module):
    """Records every batch D is shown."""

    def __init__(self, d: torch.nn.Module) -> None:
        super().__init__()
        self.d = d
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.d(x)


def test_every_image_d_sees_is_augmented_in_both_steps():
    g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
    spy = SpyDiscriminator(d)
    images = render_shapes("triangle", 32, 32, seed=3)
    state = TrainState(g, spy, torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters()), images, 8,
                       torch.Generator().manual_seed(0), augmentation=DiffAugment(policy="cutout"))
    Strategy().step(state)
    assert len(spy.seen) == 3  # fake and real in D's step, fake in G's step
    for batch in spy.seen:  # every image has its half-size hole of exact zeros
        assert ((batch == 0).all(dim=1).flatten(1).sum(1) >= 8 * 8).all()
    state.augmentation = None
    spy.seen.clear()
    Strategy().step(state)
    assert all(((batch == 0).all(dim=1).flatten(1).sum(1) < 16).all() for batch in spy.seen)


def test_xflip_and_rot90_are_exact_mirrors_and_quarter_turns():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    flipped = xflip(x, FixedDraws(torch.tensor([0.2, 0.7])))
    assert torch.equal(flipped[0], x[0].flip(2)) and torch.equal(flipped[1], x[1])
    turns = torch.tensor([0, 1, 2, 3])
    batch = x[:1].expand(4, -1, -1, -1)
    turned = rot90(batch, FixedDraws(turns))
    for k in range(4):
        assert torch.equal(turned[k], torch.rot90(x[0], k, dims=(1, 2)))
    assert augment_reals(x, (), None) is x


def test_symmetries_touch_the_real_images_only():
    """D's real batch is a mirror or quarter turn of training images; generated images reach D untouched."""
    g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
    spy = SpyDiscriminator(d)
    corner = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    corner[:, :, :8, :8] = 255  # a bright top-left corner: every symmetry moves it elsewhere some of the time
    state = TrainState(g, spy, torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters()), corner, 64,
                       torch.Generator().manual_seed(0), real_symmetries=("xflip", "rot90"))
    Strategy().step(state)
    fake, real, fake_in_g_step = spy.seen
    where = {(int(b[0, :8, :8].mean() > 0), int(b[0, :8, -8:].mean() > 0), int(b[0, -8:, :8].mean() > 0),
              int(b[0, -8:, -8:].mean() > 0)) for b in real}
    assert where == {(1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)}  # all four corners, nothing else
    assert real.abs().eq(1).all()  # pixels moved, none changed
    fresh_g, _ = build_models(MODEL, seed=0, device=torch.device("cpu"))
    with torch.no_grad():  # the step's first draw is the noise of D's fake batch
        expected = fresh_g(torch.randn(64, MODEL.z_dim, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(fake, expected)


def test_symmetries_come_from_the_pair_unless_given():
    assert parse_symmetries("xflip,rot90") == ("xflip", "rot90") and parse_symmetries("none") == ()
    with pytest.raises(UsageError, match="unknown symmetry 'flip'"):
        parse_symmetries("flip")
    with pytest.raises(UsageError, match="unknown symmetry"):
        resolve_config(real_symmetries="mirror")
    shapes = ShapesPair("shapes", "disk", "triangle")
    assert resolve_config().for_pair(shapes.symmetries).train_config(1).real_symmetries == ("xflip", "rot90")
    assert resolve_config().for_pair(()).real_symmetries == "none"  # folders and torchvision declare none
    assert resolve_config(real_symmetries="xflip").for_pair(shapes.symmetries).real_symmetries == "xflip"
    assert resolve_config(real_symmetries="none").for_pair(shapes.symmetries).train_config(1).real_symmetries == ()
    with pytest.raises(ValueError, match="must be resolved"):
        resolve_config().train_config(1)


def _train(config: TrainConfig, strategy: Strategy | None = None, augmentation: DiffAugment | None = None):
    g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
    result = train(g, d, strategy or Strategy(), render_shapes("triangle", 64, 32, seed=3), config, seed=1,
                   augmentation=augmentation)
    return result, g, d


def test_r1_changes_the_discriminator_update():
    _, _, d_plain = _train(TrainConfig(steps=2, batch_size=8))
    _, _, d_r1 = _train(TrainConfig(steps=2, batch_size=8, r1_gamma=10.0))
    differs = [not torch.equal(a, b) for a, b in zip(d_plain.state_dict().values(), d_r1.state_dict().values())]
    assert any(differs)


def test_moving_average_generator_is_what_is_evaluated():
    seen = []
    g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
    result = train(g, d, FreezeG(), render_shapes("triangle", 64, 32, seed=3),
                   TrainConfig(steps=4, batch_size=8, ema_beta=0.999), seed=1, eval_every=2,
                   evaluate=lambda step, seconds, generator: seen.append(generator))
    average = result.eval_generator
    assert average is not g and all(generator is average for generator in seen)
    averaged, current = dict(average.named_parameters()), dict(g.named_parameters())
    for name, value in averaged.items():
        if name.startswith("stages.4x4."):  # frozen by freeze-g: bit-identical in the average too
            assert torch.equal(value, current[name])
        elif name.endswith("weight") and "stages.8x8.1" in name:
            assert not torch.equal(value, current[name])
    for (name, a), (_, b) in zip(average.named_buffers(), g.named_buffers()):
        assert torch.equal(a, b), name  # BatchNorm statistics are copied, not averaged
    plain, g_plain, _ = _train(TrainConfig(steps=2, batch_size=8))
    assert plain.eval_generator is g_plain


def test_moving_average_decay_ramps_up():
    assert ema_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_decay(0.999, 100_000) == 0.999


def test_spectral_norm_bounds_every_d_convolution():
    _, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
    convolutions = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convolutions)
    _, plain = build_models(ModelConfig(resolution=32, width=8, z_dim=16, d_norm="none"), 0, torch.device("cpu"))
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in plain.modules())
    with pytest.raises(ValueError, match="unknown d_norm"):
        build_models(ModelConfig(d_norm="batch"), 0, torch.device("cpu"))


def test_augmented_step_is_deterministic():
    config = TrainConfig(steps=3, batch_size=8, r1_gamma=1.0, ema_beta=0.99)
    first, g1, _ = _train(config, augmentation=DiffAugment())
    second, g2, _ = _train(config, augmentation=DiffAugment())
    for a, b in zip(first.eval_generator.state_dict().values(), second.eval_generator.state_dict().values()):
        assert torch.equal(a, b)
