"""``cdc``: Cross-domain Correspondence (Ojha et al., CVPR 2021), few-shot adaptation against the frozen source G.

Everything trains, and two parts of the authors' code (github.com/utkarshojha/
few-shot-gan-adaptation, ``train.py``) change the adversarial game:

- **Cross-domain distance consistency.** For an auxiliary batch of latents
  (4, separate from the adversarial batch), each sample's cosine similarities
  to the other samples, at one of G's feature layers, go through a softmax,
  for the frozen source G and for the adapted G; the term is
  KL(source || adapted) averaged over the batch's similarity entries (the
  default ``mean`` reduction of the original's ``nn.KLDivLoss``), weighted by
  1000. Each sample's layer is drawn at random from every G feature layer but
  the lowest, as the original draws one per sample from every StyleGAN2 layer
  but the first.
- **Anchor-based relaxed realism.** A few anchor latents (as many as shots)
  are drawn once. Every ``anchor_every``-th step (the first included) both the
  D and the G step sample latents near the anchors (N(0, 0.1²) noise around
  a random anchor) and use D's image-level logit; every other step samples
  ordinary latents and uses patch-level logits only: an extra 3x3 convolution
  (the patch head, trained with D) on D's features after stage
  ``patch_stage``, for real and generated images alike.

The anchor schedule is kept on the device: every step computes both the image
and the patch logits (they share D's features) and a device-side counter picks
one, so the step draws the same random numbers every time and can be captured
(``--cuda-graph``). The part not selected gets a zero gradient, not none, so
Adam still moves those weights by their momentum, as in the original under
the PyTorch 1.7 it pins (``zero_grad`` filled gradients with zeros there).

On the DCGAN, G's feature layers are the outputs of its stages below the RGB
stage (``g.features``: 4x4, 8x8, 16x16, 32x32 at 32 px; the consistency term
draws from 8x8 upwards) and ``patch_stage=0`` is the output of D's lowest
stage (16x16 at 32 px): with the head, each patch logit sees 8x8 pixels, a
quarter of the image side, as the original's 61-66 of 256 (its feature at
32x32 of a 256 px image, ``highp=1``). docs/strategies.md lists every
difference from the original code.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from tganbench.augmentations.symmetries import augment_reals
from tganbench.hookspecs import hookimpl
from tganbench.step import TrainState, r1_penalty, to_float
from tganbench.strategy import Strategy


@contextmanager
def running_statistics(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the block (normalisation by running statistics), each sub-module's mode restored after.

    An auxiliary batch of four samples normalised by its own statistics would
    subtract the batch's mean from every sample and change the similarities
    between them; with running statistics the adapted G starts out computing
    exactly what the source G computes.
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def generator_layers(features: list[torch.Tensor]) -> list[torch.Tensor]:
    """The G feature layers the consistency terms draw from: all but the lowest (all, if there is only one)."""
    return features[1:] if len(features) > 1 else features


def cosine_similarities(features: torch.Tensor, others: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine similarity of each flattened row of ``features`` with each row of ``others`` (default: ``features``)."""
    a = F.normalize(features.flatten(1), dim=1)
    b = a if others is None else F.normalize(others.flatten(1), dim=1)
    return a @ b.T


def pick_rows(per_layer: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
    """Row i of ``per_layer[layers[i]]``: ``per_layer`` is (layers, n, ...), ``layers`` (n,) integers on the device."""
    return per_layer[layers, torch.arange(len(layers), device=layers.device)]


def off_diagonal(square: torch.Tensor) -> torch.Tensor:
    """An (n, n) matrix without its diagonal, as (n, n - 1): row i keeps its columns j != i in order."""
    n = len(square)
    columns = torch.arange(n - 1, device=square.device).expand(n, n - 1)
    # Column k of row i is k below the diagonal and k + 1 from it on; a gather keeps shapes static
    # (masked_select would wait for the device to count the mask, which a captured step cannot).
    columns = columns + (columns >= torch.arange(n, device=square.device)[:, None])
    return square.gather(1, columns)


def distance_consistency(source: list[torch.Tensor], adapted: list[torch.Tensor], layers: torch.Tensor) -> torch.Tensor:
    """CDC's unweighted term: KL(source || adapted) of the per-sample softmax over similarities to the other samples.

    ``source`` and ``adapted`` are the two generators' features for the same
    latents, one tensor per layer; sample i uses layer ``layers[i]``. The KL
    terms are averaged over all n(n - 1) entries (``nn.KLDivLoss``'s default
    reduction in the original), so the value is the mean per-row KL over n - 1.
    """
    def softmax_rows(features: list[torch.Tensor]) -> torch.Tensor:
        similarities = torch.stack([off_diagonal(cosine_similarities(f)) for f in features])
        return pick_rows(similarities, layers).softmax(dim=1)

    p_source, p_adapted = softmax_rows(source), softmax_rows(adapted)
    return (p_source * (p_source.log() - p_adapted.log())).mean()


class PatchHead(nn.Module):
    """CDC's patch head: a 3x3 convolution of D's features to one logit per position, then leaky ReLU scaled by √2.

    The original's ``Extra`` is a StyleGAN2 ``ConvLayer(512, 1, 3)``: a 3x3
    convolution followed by a biased leaky ReLU (slope 0.2) times √2.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Patch logits (N, positions) for D's feature maps (N, C, H, W)."""
        return (F.leaky_relu(self.conv(features), 0.2) * math.sqrt(2)).flatten(1)


def _logit_is_last_stage(d: nn.Module) -> bool:
    """Whether D's logit equals its last stage applied to its last features (probed on a copy, in eval mode)."""
    probe = copy.deepcopy(d).eval()
    size = probe.resolution
    x = torch.linspace(-1, 1, 2 * 3 * size * size).reshape(2, 3, size, size)
    with torch.no_grad():
        return torch.allclose(probe(x), probe.stages[-1](probe.features(x)[-1]), atol=1e-5)


class CDC(Strategy):
    """Source checkpoint; everything trains, with CDC's distance consistency and anchor/patch realism."""

    name = "cdc"
    description = "from source, all of G and D train; distance consistency to the source G, anchor/patch D (CDC)"
    parameters = {
        "kl_weight": 1000.0,
        "batch": 4,
        "anchor_every": 4,
        "anchor_std": 0.1,
        "anchors": 0,
        "patch_stage": 0,
    }

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        if self.params["batch"] < 3:
            raise ValueError(f"batch must be at least 3 (each sample needs two others to compare), got {self.params['batch']}")
        if self.params["anchor_every"] < 1:
            raise ValueError(f"anchor_every must be a positive integer, got {self.params['anchor_every']}")
        for key in ("kl_weight", "anchor_std", "anchors", "patch_stage"):
            if self.params[key] < 0:
                raise ValueError(f"{key} must not be negative, got {self.params[key]}")
        self.head: PatchHead | None = None
        self.anchor_latents: torch.Tensor | None = None
        self.counter: torch.Tensor | None = None

    def supports(self, architecture: str, g: nn.Module, d: nn.Module) -> str | None:
        """Needs G features, a D feature map at ``patch_stage``, and D's logit as its last stage on its last features."""
        size = d.resolution
        with torch.no_grad():
            d_features = copy.deepcopy(d).eval().features(torch.zeros(1, 3, size, size))
        stage = self.params["patch_stage"]
        if stage >= len(d_features):
            return f"patch_stage={stage}, and {architecture}'s D has {len(d_features)} feature stages"
        if d_features[stage].dim() != 4:
            return f"D's features after stage {stage} are not a feature map (N, C, H, W) on {architecture}"
        if not _logit_is_last_stage(d):
            return f"{architecture}'s D logit is not its last stage applied to its last features"
        return None

    def prepare(self, state: TrainState) -> None:
        """Draw the anchors, start the device-side step counter, and add the patch head to D's optimizer."""
        device = state.images.device
        count = self.params["anchors"] or len(state.images)
        self.anchor_latents = state.randn(count, state.g.z_dim)
        self.counter = torch.zeros((), dtype=torch.int64, device=device)
        with torch.no_grad():  # on a copy: a forward pass in train mode would move spectral norm's vectors
            probe = copy.deepcopy(state.d).eval()
            channels = probe.features(to_float(state.images[:1]))[self.params["patch_stage"]].shape[1]
        self.head = PatchHead(channels).to(device)
        with torch.no_grad():  # DCGAN initialisation, drawn from the cell's generator so that a seed repeats
            self.head.conv.weight.copy_(0.02 * state.randn(*self.head.conv.weight.shape))
            self.head.conv.bias.zero_()
        state.d_opt.add_param_group({"params": list(self.head.parameters())})

    def consistency(self, state: TrainState) -> torch.Tensor:
        """The unweighted distance-consistency term on a fresh auxiliary batch of ``batch`` latents."""
        z = state.sample_latents(self.params["batch"])
        with torch.no_grad():
            source = generator_layers(state.g_source.features(z))
        with running_statistics(state.g):
            adapted = generator_layers(state.g.features(z))
        layers = state.randint(len(adapted), self.params["batch"])
        return distance_consistency(source, adapted, layers)

    def _latents(self, state: TrainState, anchored: torch.Tensor) -> torch.Tensor:
        """A batch of latents: near random anchors on an anchor step, ordinary ones otherwise (both drawn every step)."""
        n = state.batch_size
        near_anchors = self.anchor_latents[state.randint(len(self.anchor_latents), n)]
        near_anchors = near_anchors + self.params["anchor_std"] * state.randn(n, state.g.z_dim)
        return torch.where(anchored, near_anchors, state.sample_latents(n))

    def _judge(self, state: TrainState, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D's image-level logits (N,) and patch logits (N, positions) for ``images``, after the run's augmentation."""
        if state.augmentation is not None:
            images = state.augmentation.augment(images, state)
        features = state.d.features(images)
        return state.d.stages[-1](features[-1]), self.head(features[self.params["patch_stage"]])

    def step(self, state: TrainState) -> dict[str, torch.Tensor]:
        """One D and one G update; image-level logits on anchor steps, patch-level ones otherwise."""
        anchored = self.counter % self.params["anchor_every"] == 0
        self.counter += 1

        with torch.no_grad():
            fake = state.g(self._latents(state, anchored))
        fake_image, fake_patch = self._judge(state, fake)
        real = augment_reals(state.real_batch(), state.real_symmetries, state)
        if state.r1_gamma or self.real_gradient:
            real.requires_grad_(True)
        real_image, real_patch = self._judge(state, real)
        image_loss = F.softplus(fake_image).mean() + F.softplus(-real_image).mean()
        patch_loss = F.softplus(fake_patch).mean() + F.softplus(-real_patch).mean()
        d_loss = torch.where(anchored, image_loss, patch_loss)
        real_logits = torch.where(anchored, real_image, real_patch.mean(dim=1))
        fake_logits = torch.where(anchored, fake_image, fake_patch.mean(dim=1))
        if state.augmentation is not None:  # ADA's overfitting signal: the logits this step trains D on
            state.augmentation.observe_real_logits(real_logits.detach(), state)
        if state.r1_gamma:
            d_loss = d_loss + r1_penalty(real, real_logits, state.r1_gamma)
        extra = self.discriminator_loss(state, real, real_logits, fake, fake_logits)
        if extra is not None:
            d_loss = d_loss + extra
        state.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        state.d_opt.step()

        z = self._latents(state, anchored)
        fake = state.g(z)
        image, patch = self._judge(state, fake)
        adversarial = torch.where(anchored, F.softplus(-image).mean(), F.softplus(-patch).mean())
        consistency = self.consistency(state)
        g_loss = adversarial + self.params["kl_weight"] * consistency
        extra = self.generator_loss(state, fake, z)
        if extra is not None:
            g_loss = g_loss + extra
        state.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        state.g_opt.step()
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "consistency": consistency.detach()}


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``cdc``."""
    register(CDC)
