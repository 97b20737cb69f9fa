"""``ewc``: the Fisher information of the source G, and the Fisher-weighted pull toward the source weights."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from tganbench.data.shapes import render_shapes
from tganbench.models import ModelConfig, build_models
from tganbench.strategies.ewc import EWC, ewc_penalty, fisher_information
from tganbench.strategies.finetune import Finetune
from tganbench.strategy import Strategy
from tganbench.train import TrainConfig, TrainState, train

MODEL = ModelConfig(resolution=32, width=8, z_dim=16)
IMAGES = render_shapes("triangle", 16, 32, seed=3)
CPU = torch.device("cpu")


def _source() -> dict[str, dict[str, torch.Tensor]]:
    g, d = build_models(MODEL, seed=0, device=CPU)
    return {"g": {k: v.clone() for k, v in g.state_dict().items()}, "d": {k: v.clone() for k, v in d.state_dict().items()}}


def _prepared(strategy: EWC, seed: int = 5) -> TrainState:
    """A state started from the source weights, as the loop builds it, prepared by ``strategy``."""
    source = _source()
    g, d = build_models(MODEL, seed=1, device=CPU)
    g.load_state_dict(source["g"])
    d.load_state_dict(source["d"])
    state = TrainState(g, d, None, None, IMAGES, 8, torch.Generator().manual_seed(seed), source_weights=source)
    strategy.prepare(state)
    return state


def test_penalty_is_the_fisher_weighted_squared_distance_on_hand_built_tensors():
    params = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    source = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]
    fisher = [torch.tensor([1.0, 0.5]), torch.tensor([[2.0]])]
    # 1 * 1^2 + 0.5 * 2^2 + 2 * (3 - 1)^2
    assert ewc_penalty(params, source, fisher).item() == 11.0


def test_generator_loss_is_weight_times_the_penalty_of_gs_own_parameters():
    g = torch.nn.Linear(2, 1)
    with torch.no_grad():
        g.weight.copy_(torch.tensor([[1.0, 2.0]]))
        g.bias.copy_(torch.tensor([3.0]))
    strategy = EWC(weight=3.0)
    strategy.source = [torch.zeros(1, 2), torch.tensor([1.0])]
    strategy.fisher = [torch.tensor([[1.0, 0.5]]), torch.tensor([2.0])]
    loss = strategy.generator_loss(SimpleNamespace(g=g), fake=torch.zeros(1), z=torch.zeros(1))
    assert loss.item() == 3.0 * 11.0
    loss.backward()  # d/dw of 3 * f * (w - s)^2 = 6 f (w - s)
    torch.testing.assert_close(g.weight.grad, torch.tensor([[6.0 * 1.0 * 1.0, 6.0 * 0.5 * 2.0]]))
    torch.testing.assert_close(g.bias.grad, torch.tensor([6.0 * 2.0 * 2.0]))


def test_fisher_is_the_mean_over_latents_of_the_squared_gradient_of_log_sigmoid_d_of_g():
    g, d = build_models(MODEL, seed=0, device=CPU)
    g.eval()
    d.eval()
    z = torch.randn(5, MODEL.z_dim, generator=torch.Generator().manual_seed(2))
    expected = [torch.zeros_like(p) for p in g.parameters()]
    for latent in z:  # one backward pass per latent: an independent computation of the same quantity
        log_likelihood = F.logsigmoid(d(g(latent[None]))).sum()
        for total, gradient in zip(expected, torch.autograd.grad(log_likelihood, list(g.parameters()))):
            total += gradient.square() / len(z)
    for got, want in zip(fisher_information(g, d, z), expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-10)


def test_prepare_estimates_a_finite_non_negative_fisher_shaped_like_g_and_the_penalty_is_zero_at_the_source():
    strategy = EWC(fisher_samples=8)
    state = _prepared(strategy)
    shapes = [p.shape for p in state.g.parameters()]
    assert [f.shape for f in strategy.fisher] == shapes
    assert all(torch.isfinite(f).all() and (f >= 0).all() for f in strategy.fisher)
    assert any((f > 0).any() for f in strategy.fisher)
    assert strategy.penalty(state.g).item() == 0.0
    with torch.no_grad():
        next(state.g.parameters()).add_(0.1)
    assert strategy.penalty(state.g).item() > 0.0


def test_the_fisher_estimate_depends_only_on_the_cells_seed():
    first, again, other = EWC(fisher_samples=8), EWC(fisher_samples=8), EWC(fisher_samples=8)
    _prepared(first, seed=5), _prepared(again, seed=5), _prepared(other, seed=6)
    assert all(torch.equal(a, b) for a, b in zip(first.fisher, again.fisher))
    assert not all(torch.equal(a, b) for a, b in zip(first.fisher, other.fisher))


def _trained_g(strategy: Strategy) -> torch.nn.Module:
    """G after a few training steps from the source weights."""
    source = _source()
    g, d = build_models(MODEL, seed=1, device=CPU)
    g.load_state_dict(source["g"])
    d.load_state_dict(source["d"])
    train(g, d, strategy, IMAGES, TrainConfig(steps=8, batch_size=8, ema_beta=0.0), seed=0, source_weights=source)
    return g


def test_a_large_weight_keeps_g_closer_to_the_source_than_finetune_in_the_fisher_metric():
    """Closer where it matters to the source model: each weight's change counted by its Fisher information.

    (Adam moves every weight by about the learning rate per step whatever the size of its
    gradient, so a weight the source barely depends on drifts as far as under finetune.)
    """
    ewc = EWC(weight=1e6, fisher_samples=16)
    anchored, finetuned = _trained_g(ewc), _trained_g(Finetune())
    assert ewc.penalty(anchored).item() < 0.2 * ewc.penalty(finetuned).item()
