"""``batchstat``: Batch Statistics Adaptation (Noguchi & Harada, ICCV 2019).

Only the per-channel scale and shift of G's BatchNorm layers adapt, together with
one learned latent per training image. There is no discriminator loss: each
latent must reconstruct its image (L1 plus a perceptual term), the latents are
pulled toward N(0, I) so that fresh N(0, I) noise generates target-like images,
and the scale and shift are pulled back toward the source's.

The two regularisers follow the authors' code (github.com/nogu-atsu/
small-dataset-image-generation, ``gen_models/ada_generator.py``):

- Latent prior (``latent_prior=nearest``, weight ``latent_weight=0.1``): draw
  ten N(0, I) vectors per latent of the batch; the loss is the mean, over the
  draws, of the squared distance to the nearest latent plus the mean, over the
  latents, of the squared distance to the nearest draw (``EMD``, l_emd 0.1).
  ``latent_prior=sorted`` is this project's earlier stand-in, a 1-D earth
  mover's distance per latent coordinate, kept for comparison.
- Scale/shift (``scale_shift_weight=0.02``, the original's l_re): for each
  BatchNorm layer the mean squared change of its scale plus that of its shift,
  summed over the layers (``AdaSNGAN.bs_reg``). The original adapts new
  parameters, initialised to 1 and 0, that multiply and shift the source
  layer's output, and penalises MSE(scale, 1) + MSE(shift, 0): "stay at the
  source's behaviour". Here the adapted parameters are the source layer's own
  affine weight and bias, so the same intent is written as the change from their
  values when training starts (the source checkpoint's): MSE(weight, source) +
  MSE(bias, source). The exact translation, MSE(weight / source, 1) + ...,
  divides by the source scales and is ill-conditioned where one is near zero;
  new scale/shift modules would add weights to G that the shared loop, the
  moving average and evaluation do not know about. The two agree when the
  source scales are 1; on the shipped source they lie in 0.86-1.15.

The perceptual network is the frozen source discriminator's stage activations,
which works offline; the pair's feature extractor is deliberately not offered,
since it is also what scores the samples. docs/strategies.md lists every
difference from the original code.
"""

from __future__ import annotations

import torch
from torch import nn

from tganbench.hookspecs import hookimpl
from tganbench.models.base import has_batch_norm
from tganbench.step import TrainState
from tganbench.strategy import Strategy

PERCEPTUAL_NETWORKS = ("d-source", "none")
LATENT_PRIORS = ("nearest", "sorted")
# The original draws ten N(0, I) vectors per latent of the batch for its nearest-neighbour term.
PRIOR_DRAWS_PER_LATENT = 10


def nearest_prior_distance(z: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """BSA's latent term: mean squared distance from each ``prior`` row to its nearest ``z`` row, plus the reverse.

    ``z`` is (n, dim), ``prior`` (m, dim); distances are squared Euclidean in
    the full latent space.
    """
    distances = (z[:, None, :] - prior[None, :, :]).square().sum(dim=2)  # (n, m)
    return distances.min(dim=0).values.mean() + distances.min(dim=1).values.mean()


def sorted_prior_distance(z: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """1-D earth mover's distance per latent coordinate between ``z`` and ``prior`` of the same shape, averaged."""
    return (z.sort(dim=0).values - prior.sort(dim=0).values).abs().mean()


class BatchStat(Strategy):
    """Source checkpoint; train G's BatchNorm scale/shift and per-image latents by reconstruction."""

    name = "batchstat"
    description = "from source, only G's BatchNorm scale/shift + a latent per shot train; L1 + perceptual, no D (BSA)"
    parameters = {
        "lr": 1e-3,
        "latent_lr": 0.03,
        "perceptual": "d-source",
        "perceptual_weight": 0.1,
        "latent_prior": "nearest",
        "latent_weight": 0.1,
        "scale_shift_weight": 0.02,
    }

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        for key, choices in (("perceptual", PERCEPTUAL_NETWORKS), ("latent_prior", LATENT_PRIORS)):
            if self.params[key] not in choices:
                raise ValueError(f"{key} must be one of {', '.join(choices)}, got '{self.params[key]}'")
        self.latents: torch.Tensor | None = None
        self.norms: list[nn.modules.batchnorm._BatchNorm] = []
        self.source_affine: list[tuple[torch.Tensor, torch.Tensor]] = []

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
        """Add one zero-initialised latent per image, with its own learning rate; note the starting scale/shift."""
        shape = (len(state.images), state.g.z_dim)
        self.latents = torch.zeros(shape, device=state.images.device, requires_grad=True)
        state.g_opt.add_param_group({"params": [self.latents], "lr": self.params["latent_lr"]})
        self.norms = [m for m in state.g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]
        self.source_affine = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in self.norms]

    def scale_shift_change(self) -> torch.Tensor:
        """The unweighted scale/shift regulariser: per layer, the mean squared change of scale plus of shift, summed."""
        terms = [
            (norm.weight - weight).square().mean() + (norm.bias - bias).square().mean()
            for norm, (weight, bias) in zip(self.norms, self.source_affine)
        ]
        return torch.stack(terms).sum()

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
        if self.params["latent_prior"] == "nearest":
            prior = state.randn(PRIOR_DRAWS_PER_LATENT * len(z), z.shape[1])
            latent_term = nearest_prior_distance(z, prior)
        else:
            latent_term = sorted_prior_distance(z, state.randn(*z.shape))
        loss = loss + self.params["latent_weight"] * latent_term
        if self.params["scale_shift_weight"] and self.norms:
            loss = loss + self.params["scale_shift_weight"] * self.scale_shift_change()
        state.g_opt.zero_grad(set_to_none=True)
        loss.backward()
        state.g_opt.step()
        return {"g_loss": loss.detach(), "l1": reconstruction.detach()}


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``batchstat``."""
    register(BatchStat)
