"""``l2sp``: fine-tune from the source with an L2 penalty toward the source generator weights.

L2-SP comes from Li, Grandvalet and Davoine, "Explicit Inductive Bias for
Transfer Learning with Convolutional Networks" (ICML 2018): instead of decaying
weights toward zero, decay them toward the pretrained ("starting point") values.
For GAN transfer it is the unweighted relative of EWC (Li et al., NeurIPS 2020),
which weights the same penalty by the Fisher information.
"""

from __future__ import annotations

import torch

from tganbench import Strategy, hookimpl


class L2SP(Strategy):
    """Source checkpoint; everything trains; G's loss adds ``weight * sum((theta - theta_source)^2)``."""

    name = "l2sp"
    description = "from source, all of G and D train; G's loss adds weight * ||theta - theta_source||^2 (L2-SP)"
    parameters = {"weight": 0.01}

    def prepare(self, state) -> None:
        """Remember the generator's starting (source) weights."""
        self.anchors = [(p, p.detach().clone()) for p in state.g.parameters() if p.requires_grad]

    def generator_loss(self, state, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The L2-SP penalty on the generator."""
        return self.params["weight"] * penalty(self.anchors)


def penalty(anchors: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Sum of squared distances between each parameter and its anchor value."""
    return sum(((p - p0) ** 2).sum() for p, p0 in anchors)


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``l2sp``."""
    register(L2SP)
