"""``--cuda-graph``: a strategy's step captured once as a CUDA graph and replayed; nothing else knows about it.

The loop asks :func:`step_function` for its step. Without ``--cuda-graph`` that
is the strategy's eager step. With it, the step is a :class:`GraphedStep`:
after a few eager warm-up steps the step is captured, and every later step
replays the captured kernels with fresh random numbers drawn, in the eager
order, into fixed buffers (:class:`PreDrawn`). Strategies and augmentations
need only draw through the state's ``rand`` / ``randn`` / ``randint`` and avoid
host synchronisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from tganbench.step import Draw, TrainState

if TYPE_CHECKING:
    from tganbench.strategy import Strategy


def step_function(strategy: Strategy, state: TrainState, cuda_graph: bool) -> Callable[[], dict[str, torch.Tensor]]:
    """The loop's step: the strategy's eager step, or (``cuda_graph``) the captured one.

    On a CPU a graphed step runs eagerly on pre-drawn random numbers (what tests
    can check without CUDA).
    """
    if not cuda_graph:
        return lambda: strategy.step(state)
    return GraphedStep(strategy, state, capture=state.images.device.type == "cuda")


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
            "--cuda-graph: this step's random draws differ from the previous step's (a strategy or augmentation "
            "draws a different number or shape of random numbers per step), so it cannot be captured once and "
            "replayed; run without --cuda-graph"
        )


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
