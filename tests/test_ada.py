"""``ada``: ADA's adaptive probability, its three groups of transformations, capture, and its evals.csv column."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from conftest import run_cli
from tganbench.augmentations.ada import ADA
from tganbench.data.shapes import render_shapes
from tganbench.errors import UsageError
from tganbench.models import ModelConfig, build_models
from tganbench.parameters import parse_component
from tganbench.step import TrainState, adversarial_step, to_float
from tganbench.strategy import Strategy
from tganbench.train import TrainConfig, train

IMAGES = to_float(render_shapes("triangle", 32, 32, seed=3))  # RGB in [-1, 1]


class Draws:
    """Stands in for a TrainState's draws: a seeded CPU generator."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = torch.Generator().manual_seed(seed)

    def rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.rng)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.rng)

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        return torch.randint(high, shape, generator=self.rng)


def _observe(ada: ADA, sign: float, times: int, batch: int = 8) -> None:
    for _ in range(times):
        ada.observe_real_logits(torch.full((batch, 1), sign * 2.5), Draws())


def test_p_rises_when_d_is_overconfident_on_reals_and_falls_otherwise_by_the_documented_step():
    ada = ADA(target=0.6, interval=4, kimg=0.32, p=0.5)
    step = 8 * 4 / (0.32 * 1000)  # images in an interval / (kimg * 1000) = 0.1
    _observe(ada, +1, 3)
    assert float(ada.p) == 0.5  # no update before the interval ends
    _observe(ada, +1, 1)  # r_t = 1 > 0.6: D is overconfident, p rises
    assert float(ada.p) == pytest.approx(0.5 + step) and float(ada.r_t) == 1.0
    _observe(ada, -1, 4)  # r_t = -1 < 0.6: p falls
    assert float(ada.p) == pytest.approx(0.5)
    # r_t = (3 - 1) / 4 = 0.5 < 0.6 over one interval of mixed batches: p falls
    _observe(ada, +1, 3)
    _observe(ada, -1, 1)
    assert float(ada.r_t) == pytest.approx(0.5) and float(ada.p) == pytest.approx(0.5 - step)


def test_p_stays_between_0_and_1():
    low, high = ADA(interval=1, kimg=0.032, p=0.05), ADA(interval=1, kimg=0.032, p=0.95)  # steps of 0.25
    _observe(low, -1, 3)
    _observe(high, +1, 3)
    assert float(low.p) == 0.0 and float(high.p) == 1.0


def test_with_p_0_the_augmentation_is_the_identity_bit_for_bit():
    out = ADA(p=0.0).augment(IMAGES, Draws())
    assert torch.equal(out, IMAGES)


@pytest.mark.parametrize("group", ["blit", "geom", "color"])
def test_with_p_1_each_group_changes_every_image_and_passes_gradients(group):
    images = IMAGES.clone().requires_grad_(True)
    out = ADA(p=1.0, groups=group).augment(images, Draws(1))
    changed = (out - IMAGES).abs().flatten(1).amax(dim=1) > 1e-3
    assert changed.float().mean() > 0.9
    (gradient,) = torch.autograd.grad(out.square().sum(), images)
    assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0


def test_geometry_only_moves_pixels_and_colour_stays_in_a_sensible_range():
    for group in ("blit", "geom"):
        moved = ADA(p=1.0, groups=group).augment(IMAGES, Draws(2))
        # bilinear resampling mirrored at the border mixes pixels: nothing leaves the input's range
        assert moved.min() >= IMAGES.min() - 1e-5 and moved.max() <= IMAGES.max() + 1e-5
    recoloured = ADA(p=1.0, groups="color").augment(IMAGES, Draws(2))
    assert torch.isfinite(recoloured).all()
    assert recoloured.abs().median() < 1.5 and recoloured.abs().flatten().quantile(0.99) < 4


def test_blitting_is_exact_and_colour_keeps_grey_images_grey():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8) / 400 - 0.5
    out = ADA(p=1.0, groups="blit").augment(x, Draws(3))
    # a flip, a quarter turn and a whole-pixel shift only move pixels: the centre pixels keep input values
    for image in range(2):
        values = set(x[image].flatten().tolist())
        assert all(any(abs(v - w) < 1e-5 for w in values) for v in out[image, :, 2:6, 2:6].flatten().tolist())
    grey = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = ADA(p=1.0, groups="color").augment(grey.expand(4, 3, 8, 8), Draws(4))
    # hue and saturation leave grey alone; brightness, contrast and the luma flip keep the channels equal
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 1], out[:, 2])


def test_a_single_channel_image_gets_brightness_contrast_and_the_luma_flip():
    grey = IMAGES[:, :1]
    out = ADA(p=1.0, groups="color").augment(grey, Draws(5))
    assert out.shape == grey.shape and not torch.equal(out, grey) and torch.isfinite(out).all()


def test_under_bf16_autocast_the_transformations_are_computed_in_float32():
    """--precision bf16 runs the step under autocast; ADA's maps and colour matrices must not be rounded to bf16."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = ADA(p=1.0).augment(IMAGES, Draws(6))
    torch.testing.assert_close(mixed, ADA(p=1.0).augment(IMAGES, Draws(6)))


def test_the_update_makes_no_host_synchronisation(monkeypatch):
    """A captured step cannot read a device value on the host: any such read raises here."""
    ada = ADA(interval=2, kimg=0.1, p=0.3)
    ada.augment(IMAGES, Draws())  # the first (eager) call makes p and the constants

    def refuse(*args, **kwargs):
        raise AssertionError("host synchronisation")

    for method in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, method, refuse)
    for _ in range(4):
        ada.augment(IMAGES, Draws())
        ada.observe_real_logits(torch.ones(8, 1), Draws())
    monkeypatch.undo()
    assert float(ada.p) == pytest.approx(0.3 + 2 * 16 / 100)


def test_parameters_are_validated_and_the_label_shows_overrides():
    assert parse_component("ada[kimg=4,target=0.5]", {"ada": ADA}, "augmentation").label == "ada[target=0.5,kimg=4.0]"
    for bad in ("ada[groups=zoom]", "ada[p=1.5]", "ada[target=1]", "ada[interval=0]", "ada[kimg=0]"):
        with pytest.raises(UsageError):
            parse_component(bad, {"ada": ADA}, "augmentation")


def _train(augmentation: ADA, cuda_graph: bool, strategy: Strategy | None = None, steps: int = 10):
    g, d = build_models(ModelConfig(width=8, z_dim=16), seed=0, device=torch.device("cpu"))
    images = render_shapes("triangle", 32, 32, seed=3)
    config = TrainConfig(steps=steps, batch_size=8, cuda_graph=cuda_graph, check_every=steps, r1_gamma=1.0)
    result = train(g, d, strategy or Strategy(), images, config, seed=5, augmentation=augmentation)
    return result, g, d


def test_a_graphed_step_with_ada_equals_the_eager_step_and_moves_p_the_same():
    """On the CPU a graphed step runs on pre-drawn numbers (tests/test_cuda_graph.py): it must match exactly."""
    eager_ada, graphed_ada = ADA(kimg=0.5, p=0.5), ADA(kimg=0.5, p=0.5)
    eager, g1, d1 = _train(eager_ada, cuda_graph=False)
    graphed, g2, d2 = _train(graphed_ada, cuda_graph=True)
    assert float(eager_ada.p) != 0.5  # two updates of 32 / 500 each happened
    assert torch.equal(eager_ada.p, graphed_ada.p) and torch.equal(eager_ada.r_t, graphed_ada.r_t)
    for a, b in ((g1, g2), (d1, d2)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            torch.testing.assert_close(y, x, rtol=0, atol=0, msg=name)


class ForgetsTheRealLogits(Strategy):
    """An adversarial strategy with its own step that never shows the augmentation D's real logits."""

    name = "forgets-the-real-logits"

    def step(self, state: TrainState) -> dict[str, torch.Tensor]:
        augmentation, state.augmentation = state.augmentation, None
        losses = adversarial_step(state, self)  # adversarial_step would report the logits; hide them
        state.augmentation = augmentation
        state.discriminate(to_float(state.images[:2]))
        return losses


def test_a_step_that_never_reports_the_real_logits_fails_at_evaluation_with_the_reason():
    ada = ADA()
    _train(ada, cuda_graph=False, strategy=ForgetsTheRealLogits(), steps=2)
    with pytest.raises(RuntimeError, match="never passed D's logits for the real images"):
        ada.evaluation_values()


def test_a_smoke_run_records_p_plots_it_resumes_and_compares(tmp_path):
    out = tmp_path / "run"
    # evaluations every 4 steps = one update of p (interval 4) between evaluations, each by 32 * 4 / 500
    args = ["run", "--profile", "smoke", "--strategies", "finetune", "--augment", "none,ada[kimg=0.5]",
            "--target-steps", "8", "--eval-every", "4", "--out", str(out)]
    result = run_cli(*args)
    assert result.code == 0, result.stderr
    evals = pd.read_csv(out / "evals.csv")
    assert list(pd.unique(evals["strategy"])) == ["finetune", "finetune+ada[kimg=0.5]"]
    assert evals.loc[evals["strategy"] == "finetune", "ada_p"].isna().all()
    ada = evals[evals["strategy"] == "finetune+ada[kimg=0.5]"].sort_values("step")
    assert list(ada["step"]) == [0, 4, 8] and ada["ada_p"].iloc[0] == 0 and math.isnan(ada["ada_rt"].iloc[0])
    for (_, before), (_, after) in zip(ada.iloc[:-1].iterrows(), ada.iloc[1:].iterrows()):
        expected = min(1.0, max(0.0, before["ada_p"] + math.copysign(32 * 4 / 500, after["ada_rt"] - 0.6)))
        assert after["ada_p"] == pytest.approx(expected) and -1 <= after["ada_rt"] <= 1
    assert (out / "plots" / "ada_p.png").is_file() and "ada_p.png" in (out / "summary.md").read_text()
    resumed = run_cli(*args)
    assert resumed.code == 0 and "2 finished cells already" in resumed.stderr
    assert pd.read_csv(out / "evals.csv").equals(evals)
    compared = run_cli("compare", str(out), str(out))
    assert compared.code == 0, compared.stdout + compared.stderr
