"""``cdc`` and ``dcl``: their loss terms on constructed cases, what trains, the frozen source, the anchor/patch split."""

from __future__ import annotations

import math

import pytest
import torch

from tganbench.data.shapes import render_shapes
from tganbench.models import ModelConfig, build_models
from tganbench.strategies.cdc import CDC, distance_consistency, off_diagonal
from tganbench.strategies.dcl import DCL, discriminator_contrast, generator_contrast
from tganbench.train import TrainConfig, TrainState, train
from test_cuda_graph import _assert_same_training

MODEL = ModelConfig(resolution=32, width=8, z_dim=16)
IMAGES = render_shapes("triangle", 16, 32, seed=3)
E1, E2, E3 = torch.eye(3)


def _source(g: torch.nn.Module, d: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    return {"g": {k: v.clone() for k, v in g.state_dict().items()}, "d": {k: v.clone() for k, v in d.state_dict().items()}}


def _state(strategy, seed: int = 5) -> TrainState:
    """A state built as the training loop builds it (source = the fresh models), prepared by ``strategy``."""
    g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
    g_opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    state = TrainState(g, d, g_opt, d_opt, IMAGES, 8, torch.Generator().manual_seed(seed), source_weights=_source(g, d))
    g.train()
    d.train()
    strategy.prepare(state)
    return state


# --- CDC's distance consistency -------------------------------------------------------------------------------

def test_distance_consistency_is_zero_when_the_adapted_features_equal_the_source_ones():
    features = [torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    layers = torch.tensor([0, 1, 1, 0])
    assert distance_consistency(features, [f.clone() for f in features], layers).item() == 0.0


def test_distance_consistency_is_the_mean_kl_from_the_source_on_a_constructed_case():
    # Source: three orthogonal features, so every row's softmax is (1/2, 1/2).
    # Adapted: samples 0 and 1 coincide (cosine 1), sample 2 is orthogonal to both (cosine 0).
    # Rows 0 and 1: softmax(1, 0) = (e, 1) / (e + 1); KL((1/2, 1/2) || that) = log((e + 1) / 2) - 1/2.
    # Row 2: softmax(0, 0) = (1/2, 1/2), KL 0. The original averages over all 3 x 2 entries.
    source, adapted = torch.stack([E1, E2, E3]), torch.stack([E1, E1, E2])
    expected = 2 * (math.log((math.e + 1) / 2) - 0.5) / 6
    value = distance_consistency([source], [adapted], torch.zeros(3, dtype=torch.int64))
    assert value.item() == pytest.approx(expected, rel=1e-6)
    # KL(adapted || source) would be (e log(2e / (e + 1)) + log(2 / (e + 1))) / (e + 1) per row: not this.
    reverse = 2 * (math.e * math.log(2 * math.e / (math.e + 1)) + math.log(2 / (math.e + 1))) / (math.e + 1) / 6
    assert value.item() != pytest.approx(reverse, rel=1e-3)


def test_off_diagonal_keeps_each_rows_other_columns_in_order():
    square = torch.arange(9.0).view(3, 3)
    assert off_diagonal(square).tolist() == [[1.0, 2.0], [3.0, 5.0], [6.0, 7.0]]


def test_distance_consistency_takes_each_samples_row_from_its_own_layer():
    source, adapted = torch.stack([E1, E2, E3]), torch.stack([E1, E1, E2])
    same = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    # Row 1 comes from the layer where both generators agree (KL 0); rows 0 and 2 as in the case above.
    value = distance_consistency([source, same], [adapted, same.clone()], torch.tensor([0, 1, 0]))
    assert value.item() == pytest.approx((math.log((math.e + 1) / 2) - 0.5) / 6, rel=1e-6)


# --- DCL's two InfoNCE terms --------------------------------------------------------------------------------

def test_generator_contrast_on_identical_and_on_collapsed_features():
    t = 0.5
    one_hot = torch.stack([E1, E2, E3])
    # Identical orthogonal sets: each row's logits are (1/t at the positive, 0, 0).
    identical = generator_contrast([one_hot], [one_hot.clone()], torch.zeros(3, dtype=torch.int64), t)
    assert identical.item() == pytest.approx(math.log(1 + 2 * math.exp(-1 / t)), rel=1e-6)
    # Every adapted feature collapsed onto e1: row 0 keeps its positive on top, rows 1 and 2 have (1/t, 0, 0)
    # with the positive at a 0: -log(1 / (e^(1/t) + 2)).
    collapsed = generator_contrast([torch.stack([E1, E1, E1])], [one_hot], torch.zeros(3, dtype=torch.int64), t)
    expected = (math.log(1 + 2 * math.exp(-1 / t)) + 2 * math.log(math.exp(1 / t) + 2)) / 3
    assert collapsed.item() == pytest.approx(expected, rel=1e-6)


def test_discriminator_contrast_puts_the_source_image_against_the_real_ones():
    t = 0.5
    adapted = source = torch.stack([E1, E2])
    real = torch.stack([E3, E1])  # the second real image looks exactly like the first adapted one
    # Row 0: logits (1, 0, 1) / t at the positive 1/t: log(2 + e^(-1/t)). Row 1: (1, 0, 0) / t: log(1 + 2 e^(-1/t)).
    expected = (math.log(2 + math.exp(-1 / t)) + math.log(1 + 2 * math.exp(-1 / t))) / 2
    value = discriminator_contrast([adapted], [source.clone()], [real], torch.zeros(2, dtype=torch.int64), t)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_dcl_terms_reach_only_their_own_network():
    strategy = DCL()
    state = _state(strategy)
    real = state.real_batch()
    g_params, d_params = list(state.g.parameters()), list(state.d.parameters())
    d_term = strategy.discriminator_loss(state, real, None, None, None)
    assert d_term.requires_grad
    assert all(g is None for g in torch.autograd.grad(d_term, g_params, allow_unused=True))
    assert any(g is not None and g.abs().sum() > 0 for g in torch.autograd.grad(d_term, d_params, allow_unused=True))
    g_term = strategy.generator_loss(state, None, None)
    assert any(g is not None and g.abs().sum() > 0 for g in torch.autograd.grad(g_term, g_params, allow_unused=True))
    assert not any(p.requires_grad for p in state.g_source.parameters())


# --- CDC's anchor / patch split ------------------------------------------------------------------------------

def _logit_and_head(strategy: CDC, state: TrainState) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (*state.d.stages[-1].parameters(), *strategy.head.parameters())]


@pytest.mark.parametrize("anchored", [False, True], ids=["ordinary-latents", "anchor-latents"])
def test_one_level_of_realism_per_step(anchored):
    """Without anchors D's image-level logit gets no gradient and only the patch head learns; with them, the reverse."""
    strategy = CDC()
    state = _state(strategy)
    if not anchored:
        strategy.counter.fill_(1)  # the first step is an anchor step; start one later
    before = _logit_and_head(strategy, state)
    strategy.step(state)
    logit_stage, head = list(state.d.stages[-1].parameters()), list(strategy.head.parameters())
    used, unused = (logit_stage, head) if anchored else (head, logit_stage)
    assert all(p.grad is not None and not torch.all(p.grad == 0) for p in used)
    assert all(p.grad is None or torch.all(p.grad == 0) for p in unused)
    # Adam's first step with a zero gradient moves nothing, so the unused weights are bit-identical.
    after = _logit_and_head(strategy, state)
    n = len(logit_stage)
    moved = [not torch.equal(b, a) for b, a in zip(before, after)]
    assert moved == ([True] * n + [False] * len(head) if anchored else [False] * n + [True] * len(head))


def test_anchor_steps_come_every_anchor_every_steps_starting_with_the_first():
    strategy = CDC(anchor_every=3)
    state = _state(strategy)
    seen = []
    for _ in range(7):
        strategy.step(state)
        seen.append(bool(state.d.stages[-1][0].bias.grad.abs().sum() > 0))  # the image-level logit was used
    assert seen == [True, False, False, True, False, False, True]


def test_anchor_latents_lie_near_the_anchors():
    strategy = CDC(anchor_std=0.0)
    state = _state(strategy)
    z = strategy._latents(state, torch.tensor(True))
    assert all(any(torch.equal(row, anchor) for anchor in strategy.anchor_latents) for row in z)
    assert len(strategy.anchor_latents) == len(IMAGES)  # one anchor per shot by default
    ordinary = strategy._latents(state, torch.tensor(False))
    assert not any(torch.equal(row, anchor) for row in ordinary for anchor in strategy.anchor_latents)


# --- Training: what moves, what stays ------------------------------------------------------------------------

class Recording:
    """Mixin: keep the state the loop built, to look at the optimizers and the source copy afterwards."""

    def prepare(self, state: TrainState) -> None:
        super().prepare(state)
        self.state = state


class RecordingCDC(Recording, CDC):
    """``cdc`` that keeps its state."""


class RecordingDCL(Recording, DCL):
    """``dcl`` that keeps its state."""


@pytest.mark.parametrize("strategy_class", [RecordingCDC, RecordingDCL], ids=["cdc", "dcl"])
def test_everything_trains_and_the_source_copy_stays_the_source(strategy_class):
    g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
    source = _source(g, d)
    strategy = strategy_class()
    result = train(g, d, strategy, IMAGES, TrainConfig(steps=5, batch_size=8), seed=0, source_weights=source)
    assert result.status == "ok"
    for name, value in strategy.state.g_source.state_dict().items():
        assert torch.equal(value, source["g"][name]), name
    for prefix, model in (("g", g), ("d", d)):
        for name, parameter in model.named_parameters():
            if parameter.numel() > 1:  # spectral norm's vector of a one-row weight is a constant sign, not state
                assert not torch.equal(parameter, source[prefix][name]), f"{prefix}.{name} did not train"
    extra = list(strategy.head.parameters()) if isinstance(strategy, CDC) else []
    d_trained = [p for group in strategy.state.d_opt.param_groups for p in group["params"]]
    assert all(any(p is q for q in d_trained) for p in extra)  # the patch head trains with D, at D's settings
    total = sum(p.numel() for p in (*g.parameters(), *d.parameters(), *extra))
    assert result.trainable_params == total


@pytest.mark.parametrize("strategy_class", [CDC, DCL], ids=["cdc", "dcl"])
def test_a_cell_without_a_source_is_refused(strategy_class):
    g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
    assert strategy_class.from_source
    with pytest.raises(RuntimeError, match="no source model"):
        train(g, d, strategy_class(), IMAGES, TrainConfig(steps=1, batch_size=8), seed=0)


@pytest.mark.parametrize("strategy_class", [CDC, DCL], ids=["cdc", "dcl"])
def test_steps_on_pre_drawn_random_numbers_equal_eager_steps_exactly(strategy_class):
    """What ``--cuda-graph`` replays: the anchor schedule lives on the device, so every step draws alike."""
    _assert_same_training("cpu", strategy_class, rtol=0, atol=0)


def test_cdc_refuses_a_patch_stage_that_d_does_not_have():
    g, d = build_models(MODEL, seed=0, device=torch.device("cpu"))
    assert CDC().supports("dcgan", g, d) is None
    assert CDC(patch_stage=4).supports("dcgan", g, d) == "patch_stage=4, and dcgan's D has 4 feature stages"
