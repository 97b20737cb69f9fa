"""``ewc``: Elastic Weight Consolidation for few-shot adaptation (Li, Zhang, Lu & Shechtman, NeurIPS 2020).

Fine-tuning (every weight of G and D trains, from the source) with one extra
term on G's loss, a pull of each generator weight back toward its source value,
as strong as the source model's output depends on that weight::

    weight * sum_i F_i * (theta_i - theta_source_i) ** 2

F is the diagonal of the empirical Fisher information of the source G's
weights, estimated once before training (``prepare``): the mean, over
``fisher_samples`` latents z ~ N(0, I), of the squared gradient of the
log-likelihood the paper uses, the source discriminator's log-probability that
the source generator's image is real, log sigmoid(D_s(G_s(z))). Both source
models run in eval mode (BatchNorm with its running statistics), so each
latent's gradient is its own. F and the source weights stay on the training
device, so the penalty needs no host synchronisation (``--cuda-graph``).

The paper's lambda, set for a 256-pixel StyleGAN, does not transfer: F's scale
depends on the architecture, the resolution and the discriminator. The default
``weight`` is set from F and from ``finetune``'s drift measured on the shipped
32-pixel source; docs/strategies.md gives the measurement and every difference
from the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from tganbench.hookspecs import hookimpl
from tganbench.step import TrainState
from tganbench.strategy import Strategy

# Latents per vectorised batch while estimating F: bounds the memory of the per-latent gradients.
FISHER_CHUNK = 32


def fisher_information(g: nn.Module, d: nn.Module, z: torch.Tensor) -> list[torch.Tensor]:
    """The diagonal empirical Fisher information of ``g``'s parameters, one tensor per parameter, in order.

    For each row z_n of ``z``: the gradient, with respect to ``g``'s
    parameters, of log sigmoid(d(g(z_n))), squared; averaged over the rows.
    ``g`` and ``d`` should be in eval mode, so that one latent's image does not
    depend on the others' (BatchNorm with running statistics).
    """
    names = [name for name, _ in g.named_parameters()]
    params = {name: p.detach() for name, p in g.named_parameters()}
    buffers = dict(g.named_buffers())

    def log_likelihood(weights: dict[str, torch.Tensor], latent: torch.Tensor) -> torch.Tensor:
        image = functional_call(g, (weights, buffers), (latent[None],))
        return F.logsigmoid(d(image)).sum()

    per_latent = vmap(grad(log_likelihood), in_dims=(None, 0))
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for start in range(0, len(z), FISHER_CHUNK):
        gradients = per_latent(params, z[start : start + FISHER_CHUNK])
        for name in names:
            total[name] += gradients[name].square().sum(dim=0)
    return [total[name] / len(z) for name in names]


def ewc_penalty(
    params: list[torch.Tensor], source: list[torch.Tensor], fisher: list[torch.Tensor]
) -> torch.Tensor:
    """sum_i F_i (theta_i - theta_source_i)^2 over every element of every parameter (unweighted)."""
    return torch.stack([(f * (p - s).square()).sum() for p, s, f in zip(params, source, fisher)]).sum()


class EWC(Strategy):
    """Source checkpoint; G and D fine-tune, G's loss adds the Fisher-weighted distance to the source G."""

    name = "ewc"
    description = "from source, all of G and D train; Fisher-weighted L2 of G's weights toward the source's (EWC)"
    parameters = {"weight": 100.0, "fisher_samples": 256}

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        if self.params["weight"] < 0:
            raise ValueError(f"weight must be non-negative, got {self.params['weight']}")
        if self.params["fisher_samples"] < 1:
            raise ValueError(f"fisher_samples must be at least 1, got {self.params['fisher_samples']}")
        self.fisher: list[torch.Tensor] = []
        self.source: list[torch.Tensor] = []

    def prepare(self, state: TrainState) -> None:
        """Estimate F on the source models from latents drawn with the cell's generator; keep the source weights."""
        z = state.randn(self.params["fisher_samples"], state.g.z_dim)
        self.fisher = fisher_information(state.g_source, state.d_source, z)
        self.source = [p.detach().clone() for p in state.g_source.parameters()]

    def penalty(self, g: nn.Module) -> torch.Tensor:
        """The unweighted EWC term for ``g``'s current weights."""
        return ewc_penalty(list(g.parameters()), self.source, self.fisher)

    def generator_loss(self, state: TrainState, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``weight`` times the Fisher-weighted squared distance of G's weights to the source's."""
        return self.params["weight"] * self.penalty(state.g)


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``ewc``."""
    register(EWC)
