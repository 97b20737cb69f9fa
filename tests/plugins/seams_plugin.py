"""A third-party plugin written only against tganbench's public API, exercising every contract-v2 seam.

Used by tests/test_contract_v2.py through ``--plugin``.
"""

from __future__ import annotations

import torch
from torch import nn

from tganbench import Architecture, Augmentation, Metric, Strategy, hookimpl

# What the plugins saw, for the tests to inspect (the tests run tganbench in their own process).
SEEN: dict[str, list] = {"augmented": [], "sampler_modes": [], "g_source_frozen": []}


class Spy(Augmentation):
    """Leaves images alone and notes which step (by loss phase) and which kind of image it was shown."""

    name = "spy"
    description = "records every image batch D is shown (tests)"

    def augment(self, images: torch.Tensor, state) -> torch.Tensor:
        real = images.requires_grad is False and bool(
            (images.unsqueeze(1) == (state.images.float() / 127.5 - 1).unsqueeze(0)).flatten(2).all(2).any(1).all()
        )
        SEEN["augmented"].append((state.step, "real" if real else "fake", torch.is_grad_enabled()))
        return images


class R1Term(Strategy):
    """Fine-tuning plus R1 on real images, written as a discriminator-loss term."""

    name = "r1-term"
    description = "finetune + R1 through discriminator_loss (tests)"
    parameters = {"gamma": 10.0}
    real_gradient = True

    def discriminator_loss(self, state, real, real_logits, fake, fake_logits):
        (gradient,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        return self.params["gamma"] / 2 * gradient.square().sum(dim=(1, 2, 3)).mean()


class HalfNoise(nn.Module):
    """Scales the noise by 0.5 and records whether it ran in training or evaluation mode."""

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        SEEN["sampler_modes"].append("train" if self.training else "eval")
        return 0.5 * noise


class AnchoredSampler(Strategy):
    """Replaces the latent sampler and pulls G toward the frozen source G (a CDC-like shape)."""

    name = "anchored-sampler"
    description = "half-scale latents and an L1 pull toward g_source (tests)"

    def prepare(self, state) -> None:
        state.latent_transform = HalfNoise()

    def generator_loss(self, state, fake, z):
        source = state.g_source
        SEEN["g_source_frozen"].append(not any(p.requires_grad for p in source.parameters()) and not source.training)
        return 0.1 * (fake - source(z)).abs().mean()


class TinyGenerator(nn.Module):
    """Two stages: z -> 8x8 features -> RGB at the run's resolution; no BatchNorm."""

    def __init__(self, resolution: int, z_dim: int) -> None:
        super().__init__()
        self.z_dim, self.resolution = z_dim, resolution
        self.stages = nn.Sequential(
            nn.Sequential(nn.Linear(z_dim, 16 * 8 * 8), nn.Unflatten(1, (16, 8, 8)), nn.LeakyReLU(0.2)),
            nn.Sequential(nn.Upsample(size=resolution), nn.Conv2d(16, 3, 3, padding=1), nn.Tanh()),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.stages(z)

    def features(self, z: torch.Tensor) -> list[torch.Tensor]:
        return [self.stages[0](z)]


class TinyDiscriminator(nn.Module):
    """Two stages: image -> 8x8 features -> logit."""

    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.stages = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 16, 4, stride=resolution // 8, padding=1), nn.LeakyReLU(0.2)),
            nn.Sequential(nn.Flatten(), nn.LazyLinear(1), nn.Flatten(0)),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.stages(image)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        return [self.stages[0](image)]


class Tiny(Architecture):
    """A two-stage G and D without normalisation layers."""

    name = "tiny"
    description = "two stages per network, no BatchNorm (tests)"

    def build(self, resolution: int, z_dim: int):
        d = TinyDiscriminator(resolution)
        d(torch.zeros(1, 3, resolution, resolution))  # materialise the lazy layer
        return TinyGenerator(resolution, z_dim), d


def _sharpness(evaluation) -> dict[str, float]:
    images = evaluation.samples.float()
    return {"sharpness": float((images[..., 1:, :] - images[..., :-1, :]).abs().mean())}


SHARPNESS = Metric(
    name="sharpness", title="sharpness", description="mean absolute vertical pixel difference (tests)",
    direction="higher", every_evaluation=True, columns={"sharpness": "sharpness"}, compute=_sharpness,
    threshold="10%",
)


@hookimpl
def tganbench_register_augmentations(register) -> None:
    register(Spy)


@hookimpl
def tganbench_register_strategies(register) -> None:
    register(R1Term)
    register(AnchoredSampler)


@hookimpl
def tganbench_register_architectures(register) -> None:
    register(Tiny)


@hookimpl
def tganbench_register_metrics(register) -> None:
    register(SHARPNESS)
