"""The strategy contract: what a transfer strategy may change in the shared training loop.

A strategy is a small class. The loop asks it which modules stay frozen, which
optimiser settings it wants, lets it prepare extra state, asks it for extra
generator- and discriminator-loss terms, and calls its ``step`` (the
adversarial step unless the strategy replaces it). ``supports`` lets it refuse
an architecture it cannot run on, with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from torch import nn

from tganbench.parameters import Component, parse_components
from tganbench.step import TrainState, adversarial_step

if TYPE_CHECKING:
    import torch


class Strategy(Component):
    """Base class of every transfer strategy; subclass it and register the subclass.

    Class attributes (besides ``name``, ``description`` and ``parameters``):
        from_source: start from the shared source checkpoint (True) or from a
            random initialisation with the cell's seed (False).
        adversarial: trains against the discriminator, so augmentations of D's
            inputs apply (``--augment``); False for reconstruction-only strategies.
        real_gradient: the discriminator step makes the real batch require
            gradients, so ``discriminator_loss`` can differentiate D's logits
            with respect to the real images (R1).
        cuda_graph_refusal: why the step cannot be captured as a CUDA graph
            (a host-side decision between steps, such as a phase switch), or
            "" if it can; ``--cuda-graph`` skips the strategy with this reason.
    """

    from_source: ClassVar[bool] = True
    adversarial: ClassVar[bool] = True
    real_gradient: ClassVar[bool] = False
    cuda_graph_refusal: ClassVar[str] = ""

    def supports(self, architecture: str, g: nn.Module, d: nn.Module) -> str | None:
        """Why this strategy cannot run on models of ``architecture`` (freshly built ``g``, ``d``), or None."""
        return None

    def optimizer(self) -> dict[str, float]:
        """Adam settings that differ from the run's (keys ``lr``, ``beta1``, ``beta2``), for both G and D.

        Recorded in the ``optimizer`` column of ``cells.csv``.
        """
        return {}

    def frozen(self, g: nn.Module, d: nn.Module) -> list[nn.Module]:
        """Modules whose parameters and buffers must stay bit-identical during training.

        The loop turns off their gradients and keeps them in eval mode, so
        normalisation statistics do not move either.
        """
        return []

    def prepare(self, state: TrainState) -> None:
        """Called once after the optimizers exist and before the first step (add latents, a latent sampler...).

        It may also add modules to G (``adafm``'s kernel modulation), putting their
        parameters into ``state.g_opt`` with ``add_param_group``: the moving average
        of G is copied after ``prepare``, so evaluation samples through them too.
        """

    def generator_loss(self, state: TrainState, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None:
        """An extra term added to the generator's adversarial loss, or None (EWC, CDC).

        ``z`` are the latents ``fake`` was generated from (``state.sample_latents``).
        """
        return None

    def discriminator_loss(
        self,
        state: TrainState,
        real: torch.Tensor,
        real_logits: torch.Tensor,
        fake: torch.Tensor,
        fake_logits: torch.Tensor,
    ) -> torch.Tensor | None:
        """An extra term added to the discriminator's loss, or None (R1, CDC's patch loss, DCL).

        ``real`` and ``fake`` are the batches before augmentation, ``*_logits``
        D's outputs for them after it; ``real`` requires gradients when the
        class sets ``real_gradient = True``.
        """
        return None

    def step(self, state: TrainState) -> dict[str, torch.Tensor]:
        """One training step; returns detached scalar losses. Default: the adversarial step.

        Draw random numbers through ``state.rand`` / ``randn`` / ``randint`` (or
        ``state.sample_latents``) and avoid host synchronisation, so the step
        can also be captured (``--cuda-graph``).
        """
        return adversarial_step(state, self)


def stages(module: nn.Module, count: int) -> list[nn.Module]:
    """The ``count`` lowest named stages of G or D, with a clear error if there are fewer."""
    available = list(module.stages)
    if not 0 <= count <= len(available):
        raise ValueError(f"layers must be between 0 and {len(available)}, got {count}")
    return available[:count]


def parse_strategies(text: str, available: dict[str, type[Strategy]]) -> list[Strategy]:
    """Parse ``--strategies``: ``all`` or ``name[k=v,...]`` items separated by commas.

    Returns one validated instance per distinct item; ``fresh_copy`` gives each
    cell its own. Every problem is a ``UsageError`` naming it.
    """
    return parse_components(text, available, "strategy")

