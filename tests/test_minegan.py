"""``minegan``: the miner's contract, what trains in each phase, sampling through the miner, no --cuda-graph."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from conftest import run_cli
from tganbench.config import RunConfig
from tganbench.data.shapes import render_shapes
from tganbench.models import ModelConfig, build_models
from tganbench.plan import resolve_methods, resolve_model
from tganbench.plugins import load_plugins
from tganbench.strategies.minegan import MineGAN, Miner, initialise_miner
from tganbench.train import TrainConfig, TrainState, sample_images, train

MODEL = ModelConfig(resolution=32, width=8, z_dim=16)
IMAGES = render_shapes("triangle", 16, 32, seed=3)
CPU = torch.device("cpu")
# Contiguous weights, so that G and a copy made before training compute bit-identical samples.
SHORT = {"batch_size": 8, "ema_beta": 0.0, "memory_format": "contiguous"}


class KnownMiner(MineGAN):
    """``minegan`` whose miner is set to a known map, M(z) = ReLU(z) (identity weights, zero biases)."""

    def prepare(self, state: TrainState) -> None:
        """Prepare as minegan does, then overwrite the miner's weights."""
        super().prepare(state)
        with torch.no_grad():
            for layer in (self.miner.layers[0], self.miner.layers[2]):
                layer.weight.copy_(torch.eye(layer.in_features))
                layer.bias.zero_()


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {name for name in before if not torch.equal(before[name], after[name])}


def test_the_miner_maps_z_dim_to_z_dim_and_keeps_the_scale_of_the_noise():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        miner = Miner(64)
    noise = torch.randn(4096, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        default_scale = miner(noise).square().mean().item()  # PyTorch's default Linear init
    state = TrainState(torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), None, None, IMAGES, 8,
                       torch.Generator().manual_seed(0))
    initialise_miner(miner, state)
    latents = miner(noise)
    assert latents.shape == (4096, 64)
    # G was trained on N(0, I) latents, mean square 1; the default init shrinks them to about 0.06.
    assert 0.6 < latents.square().mean().item() < 1.4
    assert default_scale < 0.2


def test_prepare_puts_the_miner_in_front_of_g_and_in_gs_optimizer():
    g, d = build_models(MODEL, 0, CPU)
    strategy = MineGAN()
    result = train(g, d, strategy, IMAGES, TrainConfig(steps=2, **SHORT), seed=0)
    assert result.eval_generator[0] is strategy.miner and result.eval_generator[1] is g  # what the grid samples
    count = sum(p.numel() for module in (g, d, strategy.miner) for p in module.parameters())
    assert result.trainable_params == count and result.total_params == count
    assert strategy.mining_steps == 1  # half of 2 steps


def test_while_mining_g_stays_bit_identical_as_miner_and_d_train_then_all_three_train():
    g, d = build_models(MODEL, 0, CPU)
    seen = {}

    def record(step, seconds, generator):
        miner, g_now = generator
        seen[step] = (_snapshot(miner), _snapshot(g_now), _snapshot(d))

    strategy = MineGAN(mining=0.5)
    train(g, d, strategy, IMAGES, TrainConfig(steps=6, **SHORT), seed=0, evaluate=record, eval_every=1)
    assert strategy.mining_steps == 3
    miner0, g0, _ = seen[0]
    for step in (1, 2, 3):  # mining: G's weights and BatchNorm statistics stay the source's
        miner, g_now, d_now = seen[step]
        previous_miner, _, previous_d = seen[step - 1]
        assert not _changed(g0, g_now), f"G changed at mining step {step}"
        assert _changed(previous_miner, miner) == set(miner0), f"not every miner tensor moved at step {step}"
        assert _changed(previous_d, d_now), f"D did not train at step {step}"
    assert _changed(seen[3][1], seen[4][1]), "G did not train on the first fine-tuning step"
    miner6, g6, d6 = seen[6]
    assert _changed(g0, g6) == set(g0)  # every weight and BatchNorm statistic of G moved
    assert _changed(seen[3][0], miner6) == set(miner0)
    assert _changed(seen[3][2], d6)


def test_the_generator_loss_is_the_adversarial_loss_of_g_of_the_mined_latents():
    g, d = build_models(MODEL, 0, CPU)
    g_opt = torch.optim.Adam([p for p in g.parameters()], lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam([p for p in d.parameters()], lr=2e-4, betas=(0.5, 0.999))
    state = TrainState(g, d, g_opt, d_opt, IMAGES, 8, torch.Generator().manual_seed(4), total_steps=4)
    strategy = KnownMiner()
    strategy.prepare(state)
    draws = torch.Generator().set_state(state.rng.get_state())
    state.step = 1  # mining
    g_loss = strategy.step(state)["g_loss"]

    torch.randn(8, MODEL.z_dim, generator=draws)  # D's fakes
    torch.randint(len(IMAGES), (8,), generator=draws)  # D's real batch
    z = torch.randn(8, MODEL.z_dim, generator=draws)  # G's latents, before the miner
    with torch.no_grad():
        expected = F.softplus(-d(g.eval()(z.clamp(min=0)))).mean()  # D after its update; G frozen, eval mode
    torch.testing.assert_close(g_loss, expected)


@pytest.mark.parametrize("ema_beta", [0.0, 0.99], ids=["g", "moving-average"])
def test_evaluation_samples_go_through_the_miner(ema_beta):
    g, d = build_models(MODEL, 0, CPU)
    source = copy.deepcopy(g)
    noise = torch.randn(12, MODEL.z_dim, generator=torch.Generator().manual_seed(2))
    samples = {}

    def record(step, seconds, generator):
        samples[step] = sample_images(generator, noise)

    train(g, d, KnownMiner(), IMAGES, TrainConfig(steps=1, **{**SHORT, "ema_beta": ema_beta}), seed=0,
          evaluate=record)
    assert torch.equal(samples[0], sample_images(source, noise.clamp(min=0)))
    assert not torch.equal(samples[0], sample_images(source, noise))


def test_mining_must_be_a_share_of_the_steps():
    with pytest.raises(ValueError, match="mining must be between 0 and 1"):
        MineGAN(mining=1.5)
    g, d = build_models(MODEL, 0, CPU)
    strategy = MineGAN(mining=0.25)
    train(g, d, strategy, IMAGES, TrainConfig(steps=8, **SHORT), seed=0)
    assert strategy.mining_steps == 2


def test_cuda_graph_skips_minegan_with_its_reason_and_keeps_the_others():
    registry = load_plugins()
    config = RunConfig(strategies="minegan,finetune", profile="smoke", width=8, cuda_graph=True)
    methods, skipped = resolve_methods(config, registry, resolve_model(config, registry))
    assert [method.strategy.name for method in methods] == ["finetune"]
    assert skipped == [f"minegan: {MineGAN.cuda_graph_refusal}"]
    alone = run_cli("run", "--profile", "smoke", "--strategies", "minegan", "--cuda-graph", "--out", "unused")
    assert alone.code == 2
    assert "nothing to run: minegan: its mining phase ends at a step the host chooses" in alone.stderr


def test_a_captured_step_is_refused_rather_than_frozen_in_one_phase():
    g, d = build_models(MODEL, 0, CPU)
    # On a CPU the graphed step runs eagerly on pre-drawn numbers, recording its draws on the third step.
    config = TrainConfig(steps=6, cuda_graph=True, **SHORT)
    with pytest.raises(RuntimeError, match="minegan under --cuda-graph: its mining phase ends"):
        train(g, d, MineGAN(), IMAGES, config, seed=0)
