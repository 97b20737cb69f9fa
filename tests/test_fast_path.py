"""The fast path changes nothing but speed; its options are switchable and recorded."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from conftest import run_cli
from tganbench.data.shapes import render_shapes
from tganbench.models import ModelConfig, build_models
from tganbench.strategy import Strategy
from tganbench.train import TrainConfig, train

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from plain_loop import plain_train  # noqa: E402

MODEL = ModelConfig(resolution=32, width=8, z_dim=32)


def _plain_and_fast(memory_format: str, model: ModelConfig = MODEL) -> tuple[list, object, tuple, tuple]:
    """Seven steps of the plain loop and of tganbench's loop from the same weights, seed and data."""
    images = render_shapes("triangle", 100, 32, seed=3)
    steps = 7
    g1, d1 = build_models(model, seed=0, device=torch.device("cpu"))
    plain_losses = plain_train(g1, d1, images, steps, batch_size=16, seed=11)
    g2, d2 = build_models(model, seed=0, device=torch.device("cpu"))
    config = TrainConfig(steps=steps, batch_size=16, memory_format=memory_format)
    result = train(g2, d2, Strategy(), images, config, seed=11)
    return plain_losses, result, (g1, d1), (g2, d2)


def _assert_same(plain_losses, result, plain_models, fast_models, **tolerance) -> None:
    d_loss, g_loss = plain_losses[-1]
    torch.testing.assert_close(result.losses["d_loss"], d_loss, **tolerance)
    torch.testing.assert_close(result.losses["g_loss"], g_loss, **tolerance)
    for plain, fast in zip(plain_models, fast_models):
        for (name, a), (_, b) in zip(plain.state_dict().items(), fast.state_dict().items()):
            torch.testing.assert_close(a, b, msg=name, **tolerance)


def test_fast_loop_and_plain_loop_give_the_same_losses_and_weights_on_cpu():
    """With the plain loop's layout (contiguous) the two loops compute exactly the same thing."""
    _assert_same(*_plain_and_fast("contiguous"), rtol=0, atol=0)


def test_channels_last_changes_only_the_last_bits():
    """The default NHWC layout uses other convolution kernels: same losses and weights within float tolerance.

    Without spectral norm: its power iteration turns the layout's last-bit differences into gradient
    differences that Adam's first steps (each moves a weight by about the learning rate) make larger
    than any tolerance that still means "the last bits".
    """
    plain_losses, result, plain_models, fast_models = _plain_and_fast("channels-last", replace(MODEL, d_norm="none"))
    d_loss, g_loss = plain_losses[-1]
    torch.testing.assert_close(result.losses["d_loss"], d_loss, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(result.losses["g_loss"], g_loss, rtol=1e-4, atol=1e-5)
    # Adam moves a weight whose gradient is nearly zero by about the learning rate whatever the gradient's
    # size, so a last-bit difference there can flip a step: at one torch thread a few hundred of 60,000
    # weights differ by up to lr/3 after seven steps. Every weight stays within Adam's bound, and almost
    # every weight agrees to the last bits.
    adam_bound = 2 * TrainConfig(steps=7).lr * 7
    for plain, fast in zip(plain_models, fast_models):
        for (name, a), (_, b) in zip(plain.state_dict().items(), fast.state_dict().items()):
            if not a.is_floating_point():
                continue
            torch.testing.assert_close(a, b, rtol=0, atol=adam_bound, msg=name)
            last_bits = (a - b).abs() <= 1e-5 + 1e-4 * b.abs()
            assert last_bits.float().mean() >= 0.99, name
    convolutions = [p for model in fast_models for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convolutions)


def test_precision_and_compile_are_switchable_and_recorded(tmp_path, monkeypatch):
    compiled = []
    # Compiling for real takes minutes on a CPU; what is tested here is that the switch reaches the models.
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(type(self).__name__))
    out = tmp_path / "on"
    result = run_cli(
        "run", "--profile", "smoke", "--strategies", "finetune", "--precision", "bf16", "--compile",
        "--memory-format", "contiguous", "--out", str(out),
    )
    assert result.code == 0, result.stderr
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["precision"] == "bf16" and config["compile"] is True and config["memory_format"] == "contiguous"
    assert {"Generator", "Discriminator"} <= set(compiled)

    compiled.clear()
    off = tmp_path / "off"
    assert run_cli("run", "--profile", "smoke", "--strategies", "finetune", "--out", str(off)).code == 0
    config = json.loads((off / "manifest.json").read_text())["config"]
    assert config["precision"] == "fp32" and config["compile"] is False and config["memory_format"] == "channels-last"
    assert compiled == []


def test_bf16_changes_the_numbers_fp32_does_not(tmp_path):
    """bf16 autocast is really applied to the step (its losses differ from fp32's)."""
    images = render_shapes("triangle", 64, 32, seed=3)
    losses = {}
    for precision in ("fp32", "bf16", "fp32-again"):
        g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
        config = TrainConfig(steps=3, batch_size=16, precision=precision.split("-")[0])
        losses[precision] = train(g, d, Strategy(), images, config, seed=0).losses
    assert losses["fp32"] == losses["fp32-again"]
    assert losses["fp32"] != losses["bf16"]


def test_peak_memory_is_recorded(smoke_run):
    import pandas as pd

    out, _ = smoke_run
    cells = pd.read_csv(out / "cells.csv")
    assert (cells["peak_memory_mb"] > 0).all()
    assert set(cells["peak_memory_kind"]) <= {"process peak RSS", "cuda max allocated"}


def test_kid_is_computed_for_the_final_model_only(smoke_run):
    import pandas as pd

    out, _ = smoke_run
    evals = pd.read_csv(out / "evals.csv")
    cells = pd.read_csv(out / "cells.csv")
    final = evals["step"] == evals["step"].max()
    assert evals.loc[final, "kid_mean"].notna().all() and evals.loc[~final, "kid_mean"].isna().all()
    assert evals["fd"].notna().all()
    assert cells["kid_mean"].notna().all()
