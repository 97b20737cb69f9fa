"""``batchstat``'s loss: BSA's scale/shift regulariser and nearest-neighbour latent prior; the earlier sorted one."""

from __future__ import annotations

import torch

from tganbench.data.shapes import render_shapes
from tganbench.models import ModelConfig, build_models
from tganbench.strategies.batchstat import BatchStat, nearest_prior_distance
from tganbench.train import TrainConfig, TrainState, train

MODEL = ModelConfig(resolution=32, width=8, z_dim=16)
IMAGES = render_shapes("triangle", 12, 32, seed=3)
BATCH = 8
LATENTS = torch.randn((len(IMAGES), MODEL.z_dim), generator=torch.Generator().manual_seed(1))


def _state(strategy: BatchStat, seed: int = 5) -> TrainState:
    """A state built as the training loop builds it, prepared by ``strategy``, with fixed non-zero latents."""
    g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
    for module in strategy.frozen(g, d):
        module.requires_grad_(False)
    g_opt = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], lr=strategy.params["lr"])
    state = TrainState(g, d, g_opt, None, IMAGES, BATCH, torch.Generator().manual_seed(seed))
    strategy.prepare(state)
    with torch.no_grad():
        strategy.latents.copy_(LATENTS)
    return state


def _norms(g: torch.nn.Module) -> list[torch.nn.BatchNorm2d]:
    return [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def _perturb(g: torch.nn.Module) -> float:
    """Move one scale and one shift by known amounts; return the regulariser's hand value (before its weight)."""
    first, third = _norms(g)[0], _norms(g)[2]
    with torch.no_grad():
        first.weight[0] += 0.3
        third.bias[2] -= 0.2
    return 0.3**2 / first.num_features + 0.2**2 / third.num_features


def _reconstruction_loss(state: TrainState, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L1 plus 0.1 times the source discriminator's perceptual L1, drawn as the step draws; also the batch's latents."""
    state.g.eval()
    indices = state.sample_indices()
    real = state.real_batch(indices)
    z = latents[indices]
    fake = state.g(z)
    perceptual = sum((a - b).abs().mean() for a, b in zip(state.d.features(fake), state.d.features(real)))
    return (fake - real).abs().mean() + 0.1 * perceptual, z


def test_scale_shift_regulariser_is_zero_at_the_source_and_the_mean_squared_change_per_layer_after():
    strategy = BatchStat()
    state = _state(strategy)
    assert strategy.scale_shift_change().item() == 0.0
    expected = _perturb(state.g)
    torch.testing.assert_close(strategy.scale_shift_change(), torch.tensor(expected))


def test_nearest_prior_distance_on_a_constructed_case():
    z = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    prior = torch.tensor([[1.0, 0.0], [3.0, 1.0], [0.0, -2.0]])
    # Squared distances: latent 0 -> 1, 10, 4; latent 1 -> 4, 1, 13.
    # Each draw's nearest latent: 1, 1, 4 (mean 2); each latent's nearest draw: 1, 1 (mean 1).
    torch.testing.assert_close(nearest_prior_distance(z, prior), torch.tensor(3.0))


def test_the_default_step_loss_is_reconstruction_plus_the_nearest_prior_plus_the_scale_shift_term():
    strategy = BatchStat()
    state = _state(strategy)
    penalty = _perturb(state.g)
    loss = strategy.step(state)["g_loss"]

    reference = _state(BatchStat())
    _perturb(reference.g)
    expected, z = _reconstruction_loss(reference, LATENTS)
    prior = reference.randn(10 * BATCH, MODEL.z_dim)  # the original draws ten per latent of the batch
    expected = expected + 0.1 * nearest_prior_distance(z, prior) + 0.02 * penalty
    torch.testing.assert_close(loss, expected)


def test_the_sorted_prior_reproduces_the_earlier_loss():
    """``batchstat[latent_prior=sorted]`` at the source scale/shift: the loss before BSA's terms were added."""
    losses = {}
    for strategy in (BatchStat(latent_prior="sorted"), BatchStat()):
        losses[strategy.label] = strategy.step(_state(strategy))["g_loss"]

    reference = _state(BatchStat())
    expected, z = _reconstruction_loss(reference, LATENTS)
    prior = reference.randn(*z.shape)
    expected = expected + 0.1 * (z.sort(0).values - prior.sort(0).values).abs().mean()
    torch.testing.assert_close(losses["batchstat[latent_prior=sorted]"], expected)
    assert not torch.isclose(losses["batchstat"], expected)


def test_the_scale_shift_regulariser_keeps_the_scales_near_the_source():
    def scale_change(weight: float) -> float:
        g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
        before = torch.cat([m.weight.detach().clone() for m in _norms(g)])
        train(g, d, BatchStat(scale_shift_weight=weight), IMAGES, TrainConfig(steps=15, batch_size=BATCH), seed=0)
        return (torch.cat([m.weight.detach() for m in _norms(g)]) - before).abs().mean().item()

    assert scale_change(1000.0) < 0.5 * scale_change(0.0)
