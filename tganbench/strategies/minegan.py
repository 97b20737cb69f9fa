"""``minegan``: MineGAN (Wang, Gonzalez-Garcia, Berga, Herranz, Khan & van de Weijer, CVPR 2020).

A small miner network M sits in front of G's latent input: z ~ N(0, I) ->
M(z) -> G. Training has two phases. While *mining* (the first ``mining``
share of the run's steps) G is frozen and only M and D train, so M learns
which region of the source generator's latent space looks like the target.
Then M, G and D train together (*fine-tuning*). Evaluation, the moving average
of G and the sample grids all sample through M (``state.latent_transform``).

Following the authors' PyTorch code (github.com/yaxingwang/MineGAN,
``styleGAN/model.py`` and ``styleGANv2/model.py``, class ``Miner``), M is
Linear(z_dim, z_dim) -> ReLU -> Linear(z_dim, z_dim); it trains in G's Adam
optimiser at G's learning rate, as a parameter group of its own, and there is
no extra loss term: M and G minimise the run's adversarial loss. While mining,
G's parameters get no gradients, so Adam never touches them, and G runs in
eval mode: its BatchNorm layers normalise with the source statistics, which
keeps G a fixed function (buffers included) for M to explore. In train mode
they would divide out any scale M gives the latents.

The mining phase ends at a step chosen on the host, which a captured CUDA
graph cannot follow, so ``--cuda-graph`` skips this strategy with that reason.
docs/strategies.md has the reference card and every difference from the
original code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tganbench.hookspecs import hookimpl
from tganbench.step import TrainState, adversarial_step
from tganbench.strategy import Strategy


class Miner(nn.Module):
    """MineGAN's miner: noise (N, z_dim) -> latents (N, z_dim) through Linear -> ReLU -> Linear."""

    def __init__(self, z_dim: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.layers = nn.Sequential(nn.Linear(z_dim, z_dim), nn.ReLU(), nn.Linear(z_dim, z_dim))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """Map N(0, I) noise to the latents G receives."""
        return self.layers(noise)


@torch.no_grad()
def initialise_miner(miner: Miner, state: TrainState) -> None:
    """Draw the miner's weights through ``state.rand`` so that its latents keep the scale of N(0, I).

    He-uniform weights before the ReLU, LeCun-uniform after it, zero biases:
    for z ~ N(0, I) each output coordinate has mean square about 1, the scale
    G was trained on.
    """
    for layer, gain in ((miner.layers[0], 2.0), (miner.layers[2], 1.0)):
        bound = math.sqrt(3 * gain / layer.in_features)  # U(-b, b) has variance b**2 / 3 = gain / fan_in
        layer.weight.copy_((2 * state.rand(*layer.weight.shape) - 1) * bound)
        layer.bias.zero_()


class MineGAN(Strategy):
    """Source checkpoint; a miner on z trains with D while G is frozen, then miner, G and D train together."""

    name = "minegan"
    description = "from source, a miner MLP on z; first it and D train (G frozen), then miner, G and D (MineGAN)"
    # The share of the run's target steps spent mining (G frozen); the rest fine-tunes miner, G and D together.
    parameters = {"mining": 0.5}
    cuda_graph_refusal = ("its mining phase ends at a step the host chooses (G goes from frozen, in eval mode, "
                          "to training), which a captured step cannot follow; run it without --cuda-graph")

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        if not 0 <= self.params["mining"] <= 1:
            raise ValueError(f"mining must be between 0 and 1 (a share of the run's steps), "
                             f"got {self.params['mining']}")
        self.miner: Miner | None = None
        self.mining_steps = 0

    def prepare(self, state: TrainState) -> None:
        """Put a freshly drawn miner in front of G, in G's optimiser, and place the end of the mining phase."""
        if state.total_steps < 1:
            raise ValueError("minegan places the end of its mining phase from state.total_steps, which is not set")
        self.miner = Miner(state.g.z_dim).to(state.images.device)
        initialise_miner(self.miner, state)
        state.g_opt.add_param_group({"params": list(self.miner.parameters())})
        state.latent_transform = self.miner
        self.mining_steps = round(self.params["mining"] * state.total_steps)

    def step(self, state: TrainState) -> dict[str, torch.Tensor]:
        """The adversarial step, with G frozen and in eval mode while mining (steps 1 .. ``mining_steps``)."""
        if state.recorded_draws is not None or state.pre_drawn is not None:
            raise RuntimeError(f"minegan under --cuda-graph: {self.cuda_graph_refusal}")
        mining = state.step <= self.mining_steps
        state.g.train(not mining)
        state.g.requires_grad_(not mining)
        return adversarial_step(state, self)


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``minegan``."""
    register(MineGAN)
