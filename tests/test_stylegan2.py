"""The ``stylegan2`` architecture: rosinality parity on a committed fixture, stages, and the model contract."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import BUILT_INS, run_cli
from tganbench.models.stylegan2 import StyleGAN2, minibatch_stddev
from tganbench.strategy import stages
from tganbench.train import to_channels_last

FIXTURE = Path(__file__).parent / "fixtures" / "stylegan2_parity"


def _fixture_models(generator_key: str) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """tganbench's models at the fixture's size, holding the fixture's weights, in float64 and eval mode."""
    checkpoint = torch.load(FIXTURE / "checkpoint.pt", map_location="cpu", weights_only=True)
    io = torch.load(FIXTURE / "io.pt", map_location="cpu", weights_only=True)
    g, d = StyleGAN2(width=8, channel_max=32, n_mlp=2).build(32, 16)
    g.load_state_dict(checkpoint[generator_key], strict=True)
    d.load_state_dict(checkpoint["d"], strict=True)
    return g.double().eval(), d.double().eval(), io


@pytest.mark.parametrize("generator_key, image_key", [("g_ema", "g_ema_image"), ("g", "g_image")])
def test_generator_reproduces_rosinality(generator_key, image_key):
    g, _, io = _fixture_models(generator_key)
    with torch.no_grad():
        image = g(io["z"].double())
        if generator_key == "g_ema":
            torch.testing.assert_close(g.style(io["z"].double()), io["w"], rtol=0, atol=1e-10)
    torch.testing.assert_close(image, io[image_key], rtol=0, atol=1e-9)


def test_discriminator_reproduces_rosinality_including_its_stddev_groups():
    _, d, io = _fixture_models("g_ema")
    with torch.no_grad():
        torch.testing.assert_close(d(io["images"].double()), io["d_images"].flatten(), rtol=0, atol=1e-9)
        torch.testing.assert_close(d(io["g_ema_image"]), io["d_g_ema_image"].flatten(), rtol=0, atol=1e-9)
        mixed = torch.cat([io["images"].double(), io["g_ema_image"]])
        torch.testing.assert_close(d(mixed), io["d_mixed8"].flatten(), rtol=0, atol=1e-9)


def test_float32_channels_last_is_within_float_tolerance():
    g, d, io = _fixture_models("g_ema")
    g, d = g.float(), d.float()
    to_channels_last(g)
    to_channels_last(d)
    with torch.no_grad():
        image = g(io["z"])
        torch.testing.assert_close(image.double(), io["g_ema_image"], rtol=0, atol=1e-4)
        torch.testing.assert_close(d(image).double(), io["d_g_ema_image"].flatten(), rtol=0, atol=1e-4)


def test_stages_are_named_lowest_first_and_cover_every_parameter():
    g, d = StyleGAN2(width=8, channel_max=32, n_mlp=2).build(32, 16)
    assert list(dict(g.stages.named_children())) == ["mapping", "4x4", "8x8", "16x16", "32x32"]
    assert list(dict(d.stages.named_children())) == ["32x32", "16x16", "8x8", "4x4"]
    for module in (g, d):
        in_stages = {id(p) for stage in module.stages for p in stage.parameters()}
        assert in_stages == {id(p) for p in module.parameters()}
    # freeze-g[layers=2]: the mapping network and the 4x4 block, nothing at 8x8 and above
    frozen = {id(p) for m in stages(g, 2) for p in m.parameters()}
    assert {id(p) for p in g.style.parameters()} <= frozen
    assert id(g.input.input) in frozen and id(g.to_rgb1.bias) in frozen
    assert not frozen & {id(p) for p in g.convs.parameters()}
    # freeze-d[layers=1]: D's RGB layer and its first residual block
    frozen = {id(p) for m in stages(d, 1) for p in m.parameters()}
    assert frozen == {id(p) for p in [*d.convs[0].parameters(), *d.convs[1].parameters()]}


def test_logit_is_the_last_stage_on_the_last_features_and_shapes_follow_the_contract():
    g, d = StyleGAN2(width=8, channel_max=32, n_mlp=2).build(16, 12)
    z = torch.randn(6, 12)
    image = g(z)
    assert image.shape == (6, 3, 16, 16)
    assert [f.shape for f in g.features(z)] == [(6, 12), (6, 32, 4, 4), (6, 16, 8, 8)]
    features = d.features(image)
    assert [f.shape[1:] for f in features] == [(16, 8, 8), (32, 4, 4)]
    torch.testing.assert_close(d(image), d.stages[-1](features[-1]))
    assert d(image).shape == (6,)


def test_stddev_groups_fall_back_to_a_divisor_of_the_batch():
    x = torch.randn(6, 2, 4, 4)
    out = minibatch_stddev(x)  # groups of 3: samples i and i + 2 and i + 4
    expected = torch.sqrt(x.reshape(3, 2, 2, 4, 4).var(0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))
    assert torch.allclose(out[:, 2, 0, 0], expected.repeat(3))


@pytest.mark.parametrize("overrides, message", [
    ({"width": 0}, "width must be a positive integer"),
    ({"n_mlp": -1}, "n_mlp must be a positive integer"),
])
def test_bad_parameters_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        StyleGAN2(**overrides)


def test_unsupported_resolution_is_refused():
    with pytest.raises(ValueError, match="resolution must be one of 16, 32"):
        StyleGAN2().build(48, 16)


def test_every_built_in_but_batchstat_runs_on_stylegan2_in_one_run(tmp_path):
    """`tganbench run --strategies all --architecture stylegan2` (smoke, a shorter budget): finite metrics everywhere."""
    out = tmp_path / "run"
    result = run_cli("run", "--strategies", "all", "--architecture", "stylegan2", "--profile", "smoke",
                     "--target-steps", "4", "--eval-every", "4", "--out", str(out))
    assert result.code == 0, result.stderr
    assert "skipped batchstat: needs BatchNorm layers in G, and stylegan2's G has none" in result.stderr
    cells = pd.read_csv(out / "cells.csv")
    assert list(cells["strategy"]) == [name for name in BUILT_INS if name != "batchstat"]
    assert (cells["status"] == "ok").all()
    for column in ("fd_final", "kid_mean", "precision", "recall", "copying", "diversity"):
        assert cells[column].map(math.isfinite).all(), column
