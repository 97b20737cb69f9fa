"""``batchstat``: Batch Statistics Adaptation (Noguchi & Harada, ICCV 2019).

Only the per-channel scale and shift of G's BatchNorm layers adapt, together with
one learned latent per training image. There is no discriminator loss: each
latent must reconstruct its image (L1 plus a perceptual term), and the latents
are pulled toward N(0, I) so that fresh N(0, I) noise generates target-like
images. The perceptual network is the frozen source discriminator's stage
activations, which works offline; the pair's feature extractor is deliberately
not offered, since it is also what scores the samples.
"""

from __future__ import annotations

import torch
from torch import nn

from tganbench.hookspecs import hookimpl
from tganbench.models.base import has_batch_norm
from tganbench.step import TrainState
from tganbench.strategy import Strategy

PERCEPTUAL_NETWORKS = ("d-source", "none")


class BatchStat(Strategy):
    """Source checkpoint; train G's BatchNorm scale/shift and per-image latents by reconstruction."""

    name = "batchstat"
    description = "from source, only G's BatchNorm scale/shift + a latent per shot train; L1 + perceptual, no D (BSA)"
    parameters = {
        "lr": 1e-3,
        "latent_lr": 0.03,
        "perceptual": "d-source",
        "perceptual_weight": 0.1,
        "latent_weight": 0.1,
    }

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        if self.params["perceptual"] not in PERCEPTUAL_NETWORKS:
            raise ValueError(f"perceptual must be one of {', '.join(PERCEPTUAL_NETWORKS)}, got '{self.params['perceptual']}'")
        self.latents: torch.Tensor | None = None

    adversarial = False

    def supports(self, architecture: str, g: nn.Module, d: nn.Module) -> str | None:
        """Only generators with BatchNorm layers: their scale and shift are what adapts."""
        return None if has_batch_norm(g) else f"needs BatchNorm layers in G, and {architecture}'s G has none"

    def optimizer(self) -> dict[str, float]:
        """The scale/shift learning rate (``lr``)."""
        return {"lr": self.params["lr"]}

    def frozen(self, g: nn.Module, d: nn.Module) -> list[nn.Module]:
        """All of D, and every G module with weights except the BatchNorm layers."""
        weighted = [m for m in g.modules() if list(m.parameters(recurse=False))]
        return [d] + [m for m in weighted if not isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def prepare(self, state: TrainState) -> None:
        """Add one zero-initialised latent per training image, with its own learning rate."""
        shape = (len(state.images), state.g.z_dim)
        self.latents = torch.zeros(shape, device=state.images.device, requires_grad=True)
        state.g_opt.add_param_group({"params": [self.latents], "lr": self.params["latent_lr"]})

    def step(self, state: TrainState) -> dict[str, torch.Tensor]:
        """One reconstruction step on a random batch of training images."""
        # Eval mode: normalise with the source statistics (they stay bit-identical);
        # only the affine scale and shift after the normalisation adapt.
        state.g.eval()
        indices = state.sample_indices()
        real = state.real_batch(indices)
        z = self.latents[indices]
        fake = state.g(z)
        reconstruction = (fake - real).abs().mean()
        loss = reconstruction
        if self.params["perceptual"] == "d-source":
            pairs = zip(state.d.features(fake), state.d.features(real))
            loss = loss + self.params["perceptual_weight"] * sum((a - b).abs().mean() for a, b in pairs)
        # 1-D earth mover's distance per latent coordinate between the batch and fresh N(0, I) draws.
        prior = state.randn(*z.shape)
        emd = (z.sort(0).values - prior.sort(0).values).abs().mean()
        loss = loss + self.params["latent_weight"] * emd
        state.g_opt.zero_grad(set_to_none=True)
        loss.backward()
        state.g_opt.step()
        return {"g_loss": loss.detach(), "l1": reconstruction.detach()}


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``batchstat``."""
    register(BatchStat)
