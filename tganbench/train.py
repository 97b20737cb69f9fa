"""The one adversarial training loop; strategies are small deltas on it."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn

from tganbench.augment import augment_reals, diff_augment
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
    cuda_graph: bool = False  # capture the step once as a CUDA graph and replay it (on a CPU: GraphedStep's emulation)
    augment: tuple[str, ...] = ()  # DiffAugment policies applied to every image D sees (tganbench.augment)
    real_symmetries: tuple[str, ...] = ()  # random mirrors / quarter turns of the real images D sees, only them
    r1_gamma: float = 0.0  # weight of the R1 penalty on D's gradient at real images; 0 turns it off
    ema_beta: float = 0.0  # evaluate a moving average of G's weights with this decay; 0 evaluates G itself


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
    """What a step needs: models, optimizers, the device-resident images and the cell's RNG.

    Every random number of a step should come from ``rand`` / ``randn`` /
    ``randint`` (or the helpers built on them): that is what lets
    ``--cuda-graph`` replay a captured step with fresh random numbers that equal
    the eager steps' ones. Images reach D through ``discriminate``, which
    applies the run's augmentation.
    """

    g: Generator
    d: Discriminator
    g_opt: torch.optim.Optimizer | None
    d_opt: torch.optim.Optimizer | None
    images: torch.Tensor
    batch_size: int
    rng: torch.Generator
    step: int = 0
    augment: tuple[str, ...] = ()
    real_symmetries: tuple[str, ...] = ()
    r1_gamma: float = 0.0
    # Set by GraphedStep: while recording, each draw is noted here; while replaying, draws come from here.
    recorded_draws: list[Draw] | None = None
    pre_drawn: PreDrawn | None = None

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

    def noise(self) -> torch.Tensor:
        """A batch of latents z ~ N(0, I)."""
        return self.randn(self.batch_size, self.g.config.z_dim)

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        """D's logits for ``images`` (real or generated), after the run's augmentation."""
        return self.d(diff_augment(images, self.augment, self))


@dataclass(frozen=True)
class Draw:
    """One random draw of a step: its distribution and shape (``torch.randn`` / ``torch.randint`` alike)."""

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


class PreDrawn:
    """Buffers for a step's random draws, refilled from the cell's generator before each replay."""

    def __init__(self, draws: list[Draw], device: torch.device) -> None:
        self.draws = draws
        self.buffers = [draw.empty(device) for draw in draws]
        self.position = 0

    def refill(self, rng: torch.Generator) -> None:
        """Draw the next step's random numbers, in the order the eager step would draw them."""
        for draw, buffer in zip(self.draws, self.buffers):
            draw.fill(buffer, rng)
        self.position = 0

    def take(self, draw: Draw) -> torch.Tensor:
        """The buffer of the step's next draw; the step must draw what the recorded step drew."""
        if self.position >= len(self.draws) or self.draws[self.position] != draw:
            self._refuse()
        self.position += 1
        return self.buffers[self.position - 1]

    def check_all_taken(self) -> None:
        """Raise if the step drew fewer random numbers than the recorded step."""
        if self.position != len(self.draws):
            self._refuse()

    @staticmethod
    def _refuse() -> None:
        raise RuntimeError(
            "--cuda-graph: this step's random draws differ from the previous step's, so it cannot be "
            "captured once and replayed; run without --cuda-graph"
        )


def adversarial_step(state: TrainState, strategy: Strategy) -> dict[str, torch.Tensor]:
    """Non-saturating logistic GAN step: one D update (with the R1 penalty if set), then one G update."""
    losses = {}
    if state.d_opt is not None:
        with torch.no_grad():
            fake = state.g(state.noise())
        fake_logits = state.discriminate(fake)
        real = augment_reals(state.real_batch(), state.real_symmetries, state)
        if state.r1_gamma:
            real.requires_grad_(True)
        real_logits = state.discriminate(real)
        d_loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        if state.r1_gamma:
            (gradient,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            d_loss = d_loss + state.r1_gamma / 2 * gradient.square().sum(dim=(1, 2, 3)).mean()
        state.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        state.d_opt.step()
        losses["d_loss"] = d_loss.detach()
    if state.g_opt is not None:
        z = state.noise()
        fake = state.g(z)
        g_loss = F.softplus(-state.discriminate(fake)).mean()
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
    # The generator to sample from: the moving average of G's weights when the run keeps one, else G.
    eval_generator: Generator | None = None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _finite_weights(*modules: nn.Module) -> bool:
    """Whether every parameter of ``modules`` is finite (one host synchronisation)."""
    checks = [torch.isfinite(p).all() for module in modules for p in module.parameters()]
    return bool(torch.stack(checks).all()) if checks else True


def ema_decay(beta: float, step: int) -> float:
    """The moving average's decay at ``step``: ``beta``, ramped up over the first steps so that the
    average does not hold on to the starting weights (min(beta, (1 + step) / (10 + step)))."""
    return min(beta, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(g_ema: nn.Module, g: nn.Module, decay: float) -> None:
    """Move ``g_ema``'s weights toward ``g``'s by ``1 - decay`` and copy ``g``'s buffers (BatchNorm statistics).

    Weights that did not change (frozen ones) stay bit-identical.
    """
    torch._foreach_lerp_(list(g_ema.parameters()), list(g.parameters()), 1 - decay)
    for average, current in zip(g_ema.buffers(), g.buffers()):
        average.copy_(current)


def _adam(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer | None:
    if not params:
        return None
    if config.cuda_graph and params[0].device.type == "cuda":  # a captured step keeps Adam's step count on the device
        return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2), capturable=True)
    # On CUDA the fused kernel updates all parameters in one launch; elsewhere keep PyTorch's default.
    fused = True if params[0].device.type == "cuda" else None
    return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2), fused=fused)


class GraphedStep:
    """A strategy's step captured once as a CUDA graph and then replayed (``--cuda-graph``).

    The first ``WARMUP_STEPS`` steps run eagerly (on a side stream, as capture
    requires); the last of them records which random draws a step makes. The
    next step is captured, and every step from then on replays the same kernels
    on the same memory, so the host launches one graph per step instead of a few
    hundred kernels. Before each replay the step's random numbers are drawn from
    the cell's generator into fixed buffers, in the order an eager step draws
    them, so replayed steps see the same numbers as eager steps would.

    What a replay cannot do is run Python: a step whose work depends on Python
    state that changes between steps (the step number, say) is frozen as it was
    when captured. With ``capture=False`` (tests on machines without CUDA) the
    step runs eagerly on the pre-drawn buffers instead of being replayed.
    """

    WARMUP_STEPS = 3

    def __init__(self, strategy: Strategy, state: TrainState, capture: bool = True) -> None:
        self.strategy = strategy
        self.state = state
        self.device = state.images.device
        self.capture = capture
        self.side_stream = torch.cuda.Stream(self.device) if capture else None
        self.eager_steps = 0
        self.pre_drawn: PreDrawn | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.losses: dict[str, torch.Tensor] = {}

    def __call__(self) -> dict[str, torch.Tensor]:
        """Run one step: eagerly while warming up, else by replaying the graph (captured on first use)."""
        if self.pre_drawn is None:
            return self._warm_up_step()
        self.pre_drawn.refill(self.state.rng)
        if not self.capture:
            return self._step_on_pre_drawn()
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):  # records the kernels without running them
                self.losses = self._step_on_pre_drawn()
        self.graph.replay()
        return self.losses

    def _warm_up_step(self) -> dict[str, torch.Tensor]:
        self.eager_steps += 1
        recording = self.eager_steps == self.WARMUP_STEPS
        if recording:
            self.state.recorded_draws = []
        if self.side_stream is None:
            losses = self.strategy.step(self.state)
        else:
            self.side_stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side_stream):
                losses = self.strategy.step(self.state)
            torch.cuda.current_stream(self.device).wait_stream(self.side_stream)
        if recording:
            self.pre_drawn = PreDrawn(self.state.recorded_draws, self.device)
            self.state.recorded_draws = None
        return losses

    def _step_on_pre_drawn(self) -> dict[str, torch.Tensor]:
        self.state.pre_drawn = self.pre_drawn
        try:
            losses = self.strategy.step(self.state)
            self.pre_drawn.check_all_taken()
        finally:
            self.state.pre_drawn = None
        return losses


def train(
    g: Generator,
    d: Discriminator,
    strategy: Strategy,
    images: torch.Tensor,
    config: TrainConfig,
    seed: int,
    evaluate: Callable[[int, float, Generator], None] | None = None,
    eval_every: int = 0,
    progress: str | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Train ``g`` and ``d`` in place on ``images`` (uint8, on the training device).

    ``evaluate(step, train_seconds, generator)`` is called at step 0, every
    ``eval_every`` steps and after the last step, with the training seconds
    spent so far and the generator to sample (with ``config.ema_beta``, a
    moving average of G's weights, updated after every step; else ``g``); its
    own time is counted as evaluation, not training. Losses are
    read back to the host only every ``config.check_every`` steps, where a
    non-finite loss or weight stops the run with status "diverged". With ``progress`` set,
    the phase's progress is shown under that name: a bar on a terminal, else
    (or when ``quiet``) a plain line now and then (``tganbench.progress``).
    """
    device = images.device
    if config.memory_format == "channels-last":
        # NHWC convolutions: on this project's CPU a step ran 1.4-2x and sampling 3-5x faster
        # (benchmarks/RESULTS.md). Module.to changes the layout of the parameters in place.
        g.to(memory_format=torch.channels_last)
        d.to(memory_format=torch.channels_last)
    frozen = strategy.frozen(g, d)
    for module in frozen:
        module.requires_grad_(False)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False) if config.ema_beta else None
    if config.compile:
        g.compile()
        d.compile()
    state = TrainState(
        g=g,
        d=d,
        g_opt=_adam([p for p in g.parameters() if p.requires_grad], config),
        d_opt=_adam([p for p in d.parameters() if p.requires_grad], config),
        images=images,
        batch_size=config.batch_size,
        rng=torch.Generator(device=device).manual_seed(seed),
        augment=config.augment,
        real_symmetries=config.real_symmetries,
        r1_gamma=config.r1_gamma,
    )
    strategy.prepare(state)
    eval_generator = g if g_ema is None else g_ema

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
        evaluate(step, train_seconds, eval_generator)
        seconds = clock() - started
        train_modes()
        return seconds

    train_seconds = eval_seconds = 0.0
    if evaluate is not None:
        eval_seconds += run_evaluation(0)
    train_modes()
    status, losses = "ok", {}
    bar = Progress(config.steps, progress, quiet=quiet) if progress else None
    run_step = GraphedStep(strategy, state, capture=device.type == "cuda") if config.cuda_graph else (
        lambda: strategy.step(state)
    )
    started = clock()
    for step in range(1, config.steps + 1):
        state.step = step
        # A captured step must recast the weights on every replay, not take casts cached at capture.
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16",
                            cache_enabled=not config.cuda_graph):
            step_losses = run_step()
        if g_ema is not None:
            update_ema(g_ema, g, ema_decay(config.ema_beta, step))
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
    return TrainResult(status, state.step, train_seconds, eval_seconds, trainable, losses, eval_generator)
