"""``dcgan``: the DCGAN-style generator and discriminator with named stages (the built-in architecture).

Stages give "the lowest k stages" one meaning for every strategy:
``Generator.stages[0]`` is nearest z (coarsest, 4x4) and
``Discriminator.stages[0]`` is nearest the image (finest resolution).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from tganbench.hookspecs import hookimpl
from tganbench.models.base import Architecture, stage_activations

RESOLUTIONS = (16, 32, 64)
D_NORMS = ("spectral", "none")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters shared by G and D (part of the source cache key)."""

    resolution: int = 32
    width: int = 32
    z_dim: int = 64
    d_norm: str = "spectral"  # spectral normalisation of every D convolution, or "none"

    def channels(self) -> list[int]:
        """Feature channels per resolution level from 4x4 upwards: 4x4 is widest, each doubling halves."""
        levels = int(math.log2(self.resolution)) - 1  # 32 -> 4, 8, 16, 32
        return [self.width * 2 ** (levels - 1 - i) for i in range(levels)]


def _init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) convolutions, N(1, 0.02) norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (N, z_dim) -> image (N, 3, R, R) in [-1, 1]; BatchNorm after every convolution.

    Each stage above 4x4 is nearest-neighbour upsampling and a 3x3 convolution:
    with so few training steps, transposed convolutions left strong checkerboard
    artefacts that dominated every distance.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.channels()
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        stages["4x4"] = nn.Sequential(
            nn.ConvTranspose2d(config.z_dim, channels[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        size = 4
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            size *= 2
            stages[f"{size}x{size}"] = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )
        stages["rgb"] = nn.Sequential(nn.Conv2d(channels[-1], 3, 3, 1, 1), nn.Tanh())
        self.stages = nn.Sequential(stages)
        self.apply(_init_weights)

    @property
    def z_dim(self) -> int:
        """Length of a latent."""
        return self.config.z_dim

    @property
    def resolution(self) -> int:
        """Side of the generated images."""
        return self.config.resolution

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generate images from latents ``z``."""
        return self.stages(z[:, :, None, None])

    def features(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Activations after every stage but the last (the RGB output), lowest first."""
        return stage_activations(self.stages, z[:, :, None, None])


class Discriminator(nn.Module):
    """image (N, 3, R, R) -> logit (N,); no normalisation layers.

    With ``d_norm="spectral"`` (the default) every convolution's weight is divided
    by its largest singular value (``torch.nn.utils.parametrizations.spectral_norm``),
    which keeps D's gradients well-scaled; its power-iteration vectors are D's
    only buffers, and they stay fixed in eval mode, so a frozen stage stays
    bit-identical.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        channels = list(reversed(config.channels()))  # finest level first
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        size = config.resolution
        c_in = 3
        for c_out in channels[:-1]:
            stages[f"{size}x{size}"] = nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True))
            c_in, size = c_out, size // 2
        stages[f"{size}x{size}"] = nn.Sequential(
            nn.Conv2d(c_in, channels[-1], 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)
        )
        stages["logit"] = nn.Sequential(nn.Conv2d(channels[-1], 1, 4, 1, 0), nn.Flatten(0))
        self.stages = nn.Sequential(stages)
        self.apply(_init_weights)
        if config.d_norm == "spectral":
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(module)
        elif config.d_norm != "none":
            raise ValueError(f"unknown d_norm {config.d_norm!r}; known: {', '.join(D_NORMS)}")

    @property
    def resolution(self) -> int:
        """Side of the images D scores."""
        return self.config.resolution

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Score images: higher means "looks real"."""
        return self.stages(image)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Activations after every stage but the logit (used as a perceptual network)."""
        return stage_activations(self.stages, image)


def build_models(config: ModelConfig, seed: int, device: torch.device) -> tuple[Generator, Discriminator]:
    """Fresh G and D, initialised deterministically from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g, d = Generator(config), Discriminator(config)
    return g.to(device), d.to(device)


class DCGAN(Architecture):
    """The DCGAN: ``width`` channels at the finest level, doubling toward 4x4; ``d_norm`` on D's convolutions."""

    name = "dcgan"
    description = "DCGAN with BatchNorm in G, upsample+conv stages; 16, 32 or 64 px (the default)"
    parameters = {"width": 32, "d_norm": "spectral"}

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        if self.params["width"] < 1:
            raise ValueError(f"width must be a positive integer, got {self.params['width']}")
        if self.params["d_norm"] not in D_NORMS:
            raise ValueError(f"d_norm must be {' or '.join(D_NORMS)}, got '{self.params['d_norm']}'")

    def model_config(self, resolution: int, z_dim: int) -> ModelConfig:
        """These parameters as the DCGAN's own config."""
        return ModelConfig(resolution=resolution, width=self.params["width"], z_dim=z_dim,
                           d_norm=self.params["d_norm"])

    def build(self, resolution: int, z_dim: int) -> tuple[Generator, Discriminator]:
        """A DCGAN G and D; resolutions 16, 32 and 64."""
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(map(str, RESOLUTIONS))}, got {resolution}")
        config = self.model_config(resolution, z_dim)
        return Generator(config), Discriminator(config)


@hookimpl
def tganbench_register_architectures(register) -> None:
    """Register ``dcgan``."""
    register(DCGAN)
