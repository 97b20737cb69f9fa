"""``dcl``: Dual Contrastive Learning (Zhao, Ding, Huang & Cheung, "A Closer Look at Few-shot Image Generation", CVPR 2022).

Everything trains with the shared adversarial step, plus two InfoNCE terms
against the frozen source G on an auxiliary batch of latents z_1..z_n (n = 4,
the batch size of the CDC code base that DCL is built on):

- **Generator side** (weight ``g_weight=2``): the anchor is the adapted G's
  feature G_t(z_i), the positive the source G's feature G_s(z_i) for the same
  latent, the negatives the source features G_s(z_j) of the other latents:
  -log softmax_j(cos(G_t(z_i), G_s(z_j)) / τ) at j = i, averaged over i.
- **Discriminator side** (weight ``d_weight=0.5``): in D's feature space the
  anchor is the adapted G's image G_t(z_i), the positive the source G's image
  G_s(z_i), the negatives real target images x_1..x_m (the first n of the D
  step's real batch): -log of exp(cos(D(G_t(z_i)), D(G_s(z_i))) / τ) over
  itself plus the sum over j of exp(cos(D(G_t(z_i)), D(x_j)) / τ). D
  minimises it (G gets no gradient from it): D's features keep an adapted
  image close to its source counterpart and apart from the real shots.

τ = 0.07. Each sample's layer is drawn at random, from G's feature layers
but the lowest for the generator term (as CDC's code draws them) and from all
of D's (``d.features``) for the discriminator term. The authors have not
published their training script (github.com/yunqing-me/A-Closer-Look-at-FSIG
holds the model, whose D returns every intermediate feature for this loss);
the definitions and weights here follow the paper. docs/strategies.md lists
the differences from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tganbench.hookspecs import hookimpl
from tganbench.step import TrainState
from tganbench.strategies.cdc import cosine_similarities, generator_layers, pick_rows, running_statistics
from tganbench.strategy import Strategy


def generator_contrast(adapted: list[torch.Tensor], source: list[torch.Tensor], layers: torch.Tensor,
                       temperature: float) -> torch.Tensor:
    """DCL's generator term: InfoNCE with the source feature of the same latent as positive, of the others as negatives.

    ``adapted`` and ``source`` hold one (n, ...) tensor per layer for the same
    n latents; row i uses layer ``layers[i]``. Returns the mean over rows of
    -log softmax_j(cos(adapted_i, source_j) / temperature) at j = i.
    """
    logits = torch.stack([cosine_similarities(a, s) for a, s in zip(adapted, source)]) / temperature
    logits = pick_rows(logits, layers)
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def discriminator_contrast(adapted: list[torch.Tensor], source: list[torch.Tensor], real: list[torch.Tensor],
                           layers: torch.Tensor, temperature: float) -> torch.Tensor:
    """DCL's discriminator term: InfoNCE of D's features with the source image as positive and real images as negatives.

    ``adapted`` and ``source`` hold D's features of G_t(z_i) and G_s(z_i), one
    (n, ...) tensor per D layer; ``real`` D's features of m real images. Row i
    uses layer ``layers[i]``; its logits are [cos(adapted_i, source_i),
    cos(adapted_i, real_1), ..., cos(adapted_i, real_m)] / temperature, and
    the term is the mean over rows of -log softmax at the positive.
    """
    per_layer = []
    for a, s, r in zip(adapted, source, real):
        positive = (F.normalize(a.flatten(1), dim=1) * F.normalize(s.flatten(1), dim=1)).sum(dim=1, keepdim=True)
        per_layer.append(torch.cat([positive, cosine_similarities(a, r)], dim=1))
    logits = pick_rows(torch.stack(per_layer), layers) / temperature
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.int64, device=logits.device))


class DCL(Strategy):
    """Source checkpoint; everything trains, with DCL's generator and discriminator contrastive terms."""

    name = "dcl"
    description = "from source, all of G and D train; InfoNCE to the source G on G's and D's features (DCL)"
    parameters = {"g_weight": 2.0, "d_weight": 0.5, "temperature": 0.07, "batch": 4}

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        if self.params["batch"] < 2:
            raise ValueError(f"batch must be at least 2 (a positive and a negative), got {self.params['batch']}")
        if self.params["temperature"] <= 0:
            raise ValueError(f"temperature must be positive, got {self.params['temperature']}")
        for key in ("g_weight", "d_weight"):
            if self.params[key] < 0:
                raise ValueError(f"{key} must not be negative, got {self.params[key]}")

    def _d_features(self, state: TrainState, images: torch.Tensor) -> list[torch.Tensor]:
        """D's features of ``images`` after the run's augmentation (D never sees an un-augmented image)."""
        if state.augmentation is not None:
            images = state.augmentation.augment(images, state)
        return state.d.features(images)

    def generator_loss(self, state: TrainState, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None:
        """``g_weight`` times the generator term on a fresh auxiliary batch (``fake`` and ``z`` are not used)."""
        n = self.params["batch"]
        latents = state.sample_latents(n)
        with torch.no_grad():
            source = generator_layers(state.g_source.features(latents))
        with running_statistics(state.g):
            adapted = generator_layers(state.g.features(latents))
        layers = state.randint(len(adapted), n)
        return self.params["g_weight"] * generator_contrast(adapted, source, layers, self.params["temperature"])

    def discriminator_loss(self, state: TrainState, real: torch.Tensor, real_logits: torch.Tensor,
                           fake: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor | None:
        """``d_weight`` times the discriminator term: fresh latents through both generators, the step's reals as negatives."""
        n = self.params["batch"]
        latents = state.sample_latents(n)
        with torch.no_grad(), running_statistics(state.g):
            adapted_images, source_images = state.g(latents), state.g_source(latents)
        adapted = self._d_features(state, adapted_images)
        source = self._d_features(state, source_images)
        negatives = self._d_features(state, real[:n].detach())
        layers = state.randint(len(adapted), n)
        term = discriminator_contrast(adapted, source, negatives, layers, self.params["temperature"])
        return self.params["d_weight"] * term


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``dcl``."""
    register(DCL)
