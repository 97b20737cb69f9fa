"""The one adversarial training loop; strategies are small deltas on it."""

from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from tganbench.config import TrainConfig
from tganbench.cuda_graph import step_function
from tganbench.progress import Progress
from tganbench.step import TrainState, sample_images, to_float, to_uint8

if TYPE_CHECKING:
    from tganbench.augmentation import Augmentation
    from tganbench.strategy import Strategy

__all__ = ["TrainConfig", "TrainResult", "TrainState", "sample_images", "to_float", "to_uint8", "train"]


@dataclass
class TrainResult:
    """How a training run ended and what it cost."""

    status: str  # "ok" or "diverged"
    steps: int
    train_seconds: float
    eval_seconds: float
    trainable_params: int
    # Every parameter the cell holds: G, D, a latent transform (MineGAN's miner), a strategy's extra modules.
    total_params: int
    losses: dict[str, float] = field(default_factory=dict)
    # The generator to sample from: the moving average of G's weights when the run keeps one, else G.
    eval_generator: nn.Module | None = None
    # The Adam settings G and D trained with (the run's, with the strategy's overrides).
    optimizer: dict[str, float] = field(default_factory=dict)


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


def optimizer_settings(config: TrainConfig, strategy: Strategy) -> dict[str, float]:
    """The Adam settings of a cell: the run's ``lr``/``beta1``/``beta2``, overridden by the strategy's."""
    settings = {"lr": config.lr, "beta1": config.beta1, "beta2": config.beta2}
    overrides = strategy.optimizer()
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise ValueError(f"strategy '{strategy.label}': optimizer() returned unknown setting '{unknown[0]}' "
                         f"(known: {', '.join(settings)})")
    return {**settings, **{k: float(v) for k, v in overrides.items()}}


def _adam(params: list[nn.Parameter], settings: dict[str, float], cuda_graph: bool) -> torch.optim.Optimizer | None:
    if not params:
        return None
    options = {"lr": settings["lr"], "betas": (settings["beta1"], settings["beta2"])}
    if cuda_graph and params[0].device.type == "cuda":  # a captured step keeps Adam's step count on the device
        return torch.optim.Adam(params, **options, capturable=True)
    # On CUDA the fused kernel updates all parameters in one launch; elsewhere keep PyTorch's default.
    return torch.optim.Adam(params, **options, fused=True if params[0].device.type == "cuda" else None)


def to_channels_last(module: nn.Module) -> None:
    """Give ``module``'s 4-D parameters and buffers the NHWC layout, in place; other tensors keep theirs.

    ``Module.to(memory_format=...)`` refuses modules holding 5-D tensors (StyleGAN2's
    modulated kernels), so the conversion goes tensor by tensor.
    """
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)


def train(
    g: nn.Module,
    d: nn.Module,
    strategy: Strategy,
    images: torch.Tensor,
    config: TrainConfig,
    seed: int,
    evaluate: Callable[[int, float, nn.Module], None] | None = None,
    eval_every: int = 0,
    progress: str | None = None,
    quiet: bool = False,
    augmentation: Augmentation | None = None,
    source_weights: dict[str, dict[str, torch.Tensor]] | None = None,
) -> TrainResult:
    """Train ``g`` and ``d`` in place on ``images`` (uint8, on the training device).

    ``evaluate(step, train_seconds, generator)`` is called at step 0, every
    ``eval_every`` steps and after the last step, with the training seconds
    spent so far and the generator to sample: noise -> images, through the
    strategy's latent transform if it set one, then (with ``config.ema_beta``) a
    moving average of G's weights updated after every step, else ``g``. Its
    own time is counted as evaluation, not training; the strategy's ``prepare``
    counts as training. ``augmentation`` is
    applied to every image D sees; ``source_weights`` (the source checkpoint's
    ``{"g", "d"}`` state dicts) back ``state.g_source`` / ``state.d_source``. Losses are
    read back to the host only every ``config.check_every`` steps, where a
    non-finite loss or weight stops the run with status "diverged". With ``progress`` set,
    the phase's progress is shown under that name: a bar on a terminal, else
    (or when ``quiet``) a plain line now and then (``tganbench.progress``).
    """
    device = images.device
    if config.memory_format == "channels-last":
        # NHWC convolutions: on this project's CPU a step ran 1.4-2x and sampling 3-5x faster
        # (benchmarks/RESULTS.md). Module.to changes the layout of the parameters in place.
        to_channels_last(g)
        to_channels_last(d)
    frozen = strategy.frozen(g, d)
    for module in frozen:
        module.requires_grad_(False)
    settings = optimizer_settings(config, strategy)
    state = TrainState(
        g=g,
        d=d,
        g_opt=_adam([p for p in g.parameters() if p.requires_grad], settings, config.cuda_graph),
        d_opt=_adam([p for p in d.parameters() if p.requires_grad], settings, config.cuda_graph),
        images=images,
        batch_size=config.batch_size,
        rng=torch.Generator(device=device).manual_seed(seed),
        total_steps=config.steps,
        augmentation=augmentation,
        real_symmetries=config.real_symmetries,
        r1_gamma=config.r1_gamma,
        source_weights=source_weights,
    )
    _synchronize(device)
    prepare_started = time.perf_counter()
    strategy.prepare(state)  # its cost (ewc's Fisher estimate) counts as training time
    _synchronize(device)
    prepare_seconds = time.perf_counter() - prepare_started
    # Copied after prepare, so that the average (and evaluation) has whatever prepare added to G, such as
    # adafm's kernel modulation; G and D are compiled after the copy, as before.
    g_ema = copy.deepcopy(g).eval().requires_grad_(False) if config.ema_beta else None
    if config.compile:
        g.compile()
        d.compile()
    eval_generator = g if g_ema is None else g_ema
    if state.latent_transform is not None:
        eval_generator = nn.Sequential(state.latent_transform, eval_generator)

    def train_modes() -> None:
        g.train()
        d.train()
        if state.latent_transform is not None:
            state.latent_transform.train()
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

    train_seconds, eval_seconds = prepare_seconds, 0.0
    if evaluate is not None:
        eval_seconds += run_evaluation(0)
    train_modes()
    status, losses = "ok", {}
    bar = Progress(config.steps, progress, quiet=quiet) if progress else None
    run_step = step_function(strategy, state, config.cuda_graph)
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
    trained = {id(p): p for optimizer in (state.g_opt, state.d_opt) if optimizer
               for group in optimizer.param_groups for p in group["params"]}
    # Everything the cell holds: G, D, a latent transform and what a strategy added to the optimisers (a patch head).
    held = {id(p): p for module in (g, d, state.latent_transform) if module is not None for p in module.parameters()}
    total = sum(p.numel() for p in {**held, **trained}.values())
    return TrainResult(status, state.step, train_seconds, eval_seconds, sum(p.numel() for p in trained.values()),
                       total, losses, eval_generator, settings)
