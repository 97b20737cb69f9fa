"""The one adversarial training loop; strategies are small deltas on it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn

from tganbench.models import Discriminator, Generator
from tganbench.progress import Progress

if TYPE_CHECKING:
    from tganbench.strategy import Strategy


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every strategy (the budget of the protocol)."""

    steps: int
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    check_every: int = 50
    precision: str = "fp32"  # "bf16": autocast the step (meant for CUDA)
    compile: bool = False  # torch.compile G and D in place
    memory_format: str = "channels-last"  # or "contiguous": the layout of G's and D's weights and activations


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float images in [-1, 1]."""
    return images.float() / 127.5 - 1


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float images in [-1, 1] -> uint8 (rounded, clamped): the one conversion real and fake share."""
    return ((images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def sample_images(g: Generator, noise: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """uint8 images from ``g`` in eval mode for each row of ``noise`` (the evaluation samples)."""
    g.eval()
    return torch.cat([to_uint8(g(noise[i : i + batch_size])) for i in range(0, len(noise), batch_size)])


@dataclass
class TrainState:
    """What a step needs: models, optimizers, the device-resident images and the cell's RNG."""

    g: Generator
    d: Discriminator
    g_opt: torch.optim.Optimizer | None
    d_opt: torch.optim.Optimizer | None
    images: torch.Tensor
    batch_size: int
    rng: torch.Generator
    step: int = 0

    def sample_indices(self) -> torch.Tensor:
        """A batch of random training-image indices, drawn on the device."""
        return torch.randint(len(self.images), (self.batch_size,), device=self.images.device, generator=self.rng)

    def real_batch(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """A float batch of training images (random unless ``indices`` is given)."""
        return to_float(self.images[self.sample_indices() if indices is None else indices])

    def noise(self) -> torch.Tensor:
        """A batch of latents z ~ N(0, I)."""
        shape = (self.batch_size, self.g.config.z_dim)
        return torch.randn(shape, device=self.images.device, generator=self.rng)


def adversarial_step(state: TrainState, strategy: Strategy) -> dict[str, torch.Tensor]:
    """Non-saturating logistic GAN step: one D update, then one G update."""
    losses = {}
    if state.d_opt is not None:
        with torch.no_grad():
            fake = state.g(state.noise())
        d_loss = F.softplus(state.d(fake)).mean() + F.softplus(-state.d(state.real_batch())).mean()
        state.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        state.d_opt.step()
        losses["d_loss"] = d_loss.detach()
    if state.g_opt is not None:
        z = state.noise()
        fake = state.g(z)
        g_loss = F.softplus(-state.d(fake)).mean()
        extra = strategy.generator_loss(state, fake, z)
        if extra is not None:
            g_loss = g_loss + extra
        state.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        state.g_opt.step()
        losses["g_loss"] = g_loss.detach()
    return losses


@dataclass
class TrainResult:
    """How a training run ended and what it cost."""

    status: str  # "ok" or "diverged"
    steps: int
    train_seconds: float
    eval_seconds: float
    trainable_params: int
    losses: dict[str, float] = field(default_factory=dict)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _finite_weights(*modules: nn.Module) -> bool:
    """Whether every parameter of ``modules`` is finite (one host synchronisation)."""
    checks = [torch.isfinite(p).all() for module in modules for p in module.parameters()]
    return bool(torch.stack(checks).all()) if checks else True


def _adam(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer | None:
    if not params:
        return None
    # On CUDA the fused kernel updates all parameters in one launch; elsewhere keep PyTorch's default.
    fused = True if params[0].device.type == "cuda" else None
    return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2), fused=fused)


def train(
    g: Generator,
    d: Discriminator,
    strategy: Strategy,
    images: torch.Tensor,
    config: TrainConfig,
    seed: int,
    evaluate: Callable[[int, float], None] | None = None,
    eval_every: int = 0,
    progress: str | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Train ``g`` and ``d`` in place on ``images`` (uint8, on the training device).

    ``evaluate(step, train_seconds)`` is called at step 0, every ``eval_every``
    steps and after the last step, with the training seconds spent so far; its
    own time is counted as evaluation, not training. Losses are
    read back to the host only every ``config.check_every`` steps, where a
    non-finite loss or weight stops the run with status "diverged". With ``progress`` set,
    the phase's progress is shown under that name: a bar on a terminal, else
    (or when ``quiet``) a plain line now and then (``tganbench.progress``).
    """
    device = images.device
    if config.memory_format == "channels-last":
        # NHWC convolutions: on a CPU this made a step about 1.3x and sampling about 3x faster
        # (benchmarks/RESULTS.md). Module.to changes the layout of the parameters in place.
        g.to(memory_format=torch.channels_last)
        d.to(memory_format=torch.channels_last)
    if config.compile:
        g.compile()
        d.compile()
    frozen = strategy.frozen(g, d)
    for module in frozen:
        module.requires_grad_(False)
    state = TrainState(
        g=g,
        d=d,
        g_opt=_adam([p for p in g.parameters() if p.requires_grad], config),
        d_opt=_adam([p for p in d.parameters() if p.requires_grad], config),
        images=images,
        batch_size=config.batch_size,
        rng=torch.Generator(device=device).manual_seed(seed),
    )
    strategy.prepare(state)

    def train_modes() -> None:
        g.train()
        d.train()
        for module in frozen:
            module.eval()

    def clock() -> float:
        _synchronize(device)  # CUDA work is asynchronous: wait before reading the time
        return time.perf_counter()

    def run_evaluation(step: int) -> float:
        started = clock()
        evaluate(step, train_seconds)
        seconds = clock() - started
        train_modes()
        return seconds

    train_seconds = eval_seconds = 0.0
    if evaluate is not None:
        eval_seconds += run_evaluation(0)
    train_modes()
    status, losses = "ok", {}
    bar = Progress(config.steps, progress, quiet=quiet) if progress else None
    started = clock()
    for step in range(1, config.steps + 1):
        state.step = step
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            step_losses = strategy.step(state)
        if bar is not None:
            bar.update()
        if step % config.check_every == 0 or step == config.steps:
            losses = {name: float(value) for name, value in step_losses.items()}
            if not all(math.isfinite(value) for value in losses.values()) or not _finite_weights(g, d):
                status = "diverged"
                break
        if evaluate is not None and (step == config.steps or (eval_every and step % eval_every == 0)):
            train_seconds += clock() - started
            eval_seconds += run_evaluation(step)
            started = clock()
    train_seconds += clock() - started
    if bar is not None:
        bar.close()
    trainable = sum(
        p.numel() for optimizer in (state.g_opt, state.d_opt) if optimizer
        for group in optimizer.param_groups for p in group["params"]
    )
    return TrainResult(status, state.step, train_seconds, eval_seconds, trainable, losses)
