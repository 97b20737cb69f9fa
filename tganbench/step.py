"""The training state and the adversarial step: the seams every strategy and augmentation acts on.

``TrainState`` is what one step sees: the models and optimizers, the
device-resident training images and the cell's random-number generator. Its
methods are the seams of the contract:

- ``rand`` / ``randn`` / ``randint``: every random number of a step, so that a
  captured step (``--cuda-graph``, ``tganbench.cuda_graph``) replays with fresh
  numbers equal to the eager step's;
- ``sample_latents(n)``: the latent sampler, N(0, I) unless a strategy sets
  ``latent_transform`` (a module applied to N(0, I) noise); evaluation samples
  through the same transform;
- ``discriminate(images)``: the one place D is called, after the run's
  augmentation, for real and generated images in both steps (the adversarial
  step also shows the augmentation D's logits for the real batch,
  ``Augmentation.observe_real_logits``);
- ``g_source`` / ``d_source``: frozen copies of the source models, made on first use.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from tganbench.augmentations.symmetries import augment_reals

if TYPE_CHECKING:
    from tganbench.augmentation import Augmentation
    from tganbench.strategy import Strategy


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float images in [-1, 1]."""
    return images.float() / 127.5 - 1


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float images in [-1, 1] -> uint8 (rounded, clamped): the one conversion real and fake share."""
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def sample_images(g: nn.Module, noise: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """uint8 images from ``g`` in eval mode for each row of ``noise`` (the evaluation samples)."""
    g.eval()
    return torch.cat([to_uint8(g(noise[i : i + batch_size])) for i in range(0, len(noise), batch_size)])


@dataclass(frozen=True)
class Draw:
    """One random draw of a step: its distribution and shape (``torch.rand`` / ``randn`` / ``randint`` alike)."""

    kind: str  # "uniform", "normal" or "integers"
    shape: tuple[int, ...]
    high: int = 0

    def empty(self, device: torch.device) -> torch.Tensor:
        """An uninitialised tensor for this draw."""
        return torch.empty(self.shape, dtype=torch.int64 if self.kind == "integers" else torch.float32, device=device)

    def fill(self, out: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        """Fill ``out`` in place from ``rng``, exactly as ``torch.rand`` / ``randn`` / ``randint`` would draw."""
        if self.kind == "uniform":
            return out.uniform_(generator=rng)
        return out.normal_(generator=rng) if self.kind == "normal" else out.random_(0, self.high, generator=rng)


@dataclass
class TrainState:
    """What a step needs: models, optimizers, the device-resident images, the cell's RNG and the seams.

    Every random number of a step should come from ``rand`` / ``randn`` /
    ``randint`` (or the helpers built on them): that is what lets
    ``--cuda-graph`` replay a captured step with fresh random numbers that equal
    the eager steps' ones. Images reach D through ``discriminate``, which
    applies the run's augmentation.
    """

    g: nn.Module
    d: nn.Module
    g_opt: torch.optim.Optimizer | None
    d_opt: torch.optim.Optimizer | None
    images: torch.Tensor
    batch_size: int
    rng: torch.Generator
    step: int = 0
    # The run's number of training steps (its budget), for strategies whose schedule depends on it; 0 if unknown.
    total_steps: int = 0
    augmentation: Augmentation | None = None
    real_symmetries: tuple[str, ...] = ()
    r1_gamma: float = 0.0
    # N(0, I) noise -> latents; a strategy may set a module here (MineGAN's miner). Evaluation uses it too.
    latent_transform: nn.Module | None = None
    # The source checkpoint's state dicts ({"g": ..., "d": ...}); None when the cell starts from random weights.
    source_weights: dict[str, dict[str, torch.Tensor]] | None = field(default=None, repr=False)
    # Set by tganbench.cuda_graph: while recording, each draw is noted here; while replaying, draws come from here.
    recorded_draws: list[Draw] | None = None
    pre_drawn: Any = None
    _source_copies: dict[str, nn.Module] = field(default_factory=dict, repr=False)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform samples in [0, 1) of ``shape`` from the cell's generator, on the training device."""
        return self._draw(Draw("uniform", shape))

    def randn(self, *shape: int) -> torch.Tensor:
        """N(0, 1) samples of ``shape`` from the cell's generator, on the training device."""
        return self._draw(Draw("normal", shape))

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        """Integers in [0, ``high``) of ``shape`` from the cell's generator, on the training device."""
        return self._draw(Draw("integers", shape, high))

    def _draw(self, draw: Draw) -> torch.Tensor:
        if self.pre_drawn is not None:
            return self.pre_drawn.take(draw)
        if self.recorded_draws is not None:
            self.recorded_draws.append(draw)
        return draw.fill(draw.empty(self.images.device), self.rng)

    def sample_indices(self) -> torch.Tensor:
        """A batch of random training-image indices, drawn on the device."""
        return self.randint(len(self.images), self.batch_size)

    def real_batch(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """A float batch of training images (random unless ``indices`` is given)."""
        return to_float(self.images[self.sample_indices() if indices is None else indices])

    def sample_latents(self, n: int) -> torch.Tensor:
        """``n`` latents for G: N(0, I) noise through ``latent_transform`` when a strategy set one."""
        noise = self.randn(n, self.g.z_dim)
        return noise if self.latent_transform is None else self.latent_transform(noise)

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        """D's logits for ``images`` (real or generated), after the run's augmentation."""
        if self.augmentation is not None:
            images = self.augmentation.augment(images, self)
        return self.d(images)

    @property
    def g_source(self) -> nn.Module:
        """A frozen copy of the source generator (made on first use; eval mode, no gradients)."""
        return self._source_copy("g", self.g)

    @property
    def d_source(self) -> nn.Module:
        """A frozen copy of the source discriminator (made on first use; eval mode, no gradients)."""
        return self._source_copy("d", self.d)

    def _source_copy(self, which: str, model: nn.Module) -> nn.Module:
        if which not in self._source_copies:
            if self.source_weights is None:
                raise RuntimeError(f"{which}_source: this cell starts from random weights, so there is no source model")
            source = copy.deepcopy(model)
            source.load_state_dict(self.source_weights[which])
            self._source_copies[which] = source.eval().requires_grad_(False)
        return self._source_copies[which]


def r1_penalty(real: torch.Tensor, real_logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """R1 (Mescheder et al., 2018): ``gamma / 2`` times the mean squared norm of D's gradient at ``real``.

    ``real`` must require gradients and ``real_logits`` be D's output for it.
    """
    (gradient,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return gamma / 2 * gradient.square().sum(dim=(1, 2, 3)).mean()


def _add(loss: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
    return loss if extra is None else loss + extra


def adversarial_step(state: TrainState, strategy: Strategy) -> dict[str, torch.Tensor]:
    """Non-saturating logistic GAN step: one D update (plus R1 and the strategy's D term), then one G update."""
    losses = {}
    if state.d_opt is not None:
        with torch.no_grad():
            fake = state.g(state.sample_latents(state.batch_size))
        fake_logits = state.discriminate(fake)
        real = augment_reals(state.real_batch(), state.real_symmetries, state)
        if state.r1_gamma or strategy.real_gradient:
            real.requires_grad_(True)
        real_logits = state.discriminate(real)
        if state.augmentation is not None:  # ADA adapts its strength to D's confidence on the reals
            state.augmentation.observe_real_logits(real_logits.detach(), state)
        d_loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        if state.r1_gamma:
            d_loss = d_loss + r1_penalty(real, real_logits, state.r1_gamma)
        d_loss = _add(d_loss, strategy.discriminator_loss(state, real, real_logits, fake, fake_logits))
        state.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        state.d_opt.step()
        losses["d_loss"] = d_loss.detach()
    if state.g_opt is not None:
        z = state.sample_latents(state.batch_size)
        fake = state.g(z)
        g_loss = _add(F.softplus(-state.discriminate(fake)).mean(), strategy.generator_loss(state, fake, z))
        state.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        state.g_opt.step()
        losses["g_loss"] = g_loss.detach()
    return losses

