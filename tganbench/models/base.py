"""The model contract every architecture follows, and the architecture plugin type.

Strategies and the loop rely on these properties of a generator G and a
discriminator D, whatever the architecture:

- ``stages``: an ordered container of sub-modules, **lowest first**. For G the
  lowest stage is nearest z (coarsest resolution); for D it is nearest the image
  (finest resolution). ``freeze-d[layers=k]`` and ``freeze-g[layers=k]`` freeze
  the ``k`` lowest stages, so they mean the same thing on every architecture.
- ``z_dim`` (G): the length of a latent; G maps ``(N, z_dim)`` to ``(N, 3, R, R)``
  images in [-1, 1]. D maps such images to logits ``(N,)``.
- ``resolution`` (G and D): R.
- ``features(x)`` (G and D): activations after each stage but the last, lowest
  first, for perceptual and feature-level losses (G: from latents; D: from images).
- Normalisation layers that strategies may adapt are ``torch.nn`` BatchNorm
  layers (``batchstat`` refuses a G without them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tganbench.parameters import Component


class Architecture(Component):
    """Base class of an architecture plugin: builds a G and a D that follow the model contract.

    ``parameters`` are the architecture's hyper-parameters (``--architecture NAME[k=v]``).
    """

    def build(self, resolution: int, z_dim: int) -> tuple[nn.Module, nn.Module]:
        """A freshly initialised (G, D) at ``resolution`` with latents of ``z_dim``.

        Raise ``ValueError`` naming the problem for a combination it cannot build
        (an unsupported resolution, say). Random initialisation draws from
        torch's global generator, which the caller seeds.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class ModelSpec:
    """The models of a run: an architecture with its parameters, a resolution and a latent size."""

    architecture: Architecture
    resolution: int
    z_dim: int

    def build(self, seed: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
        """Fresh G and D, initialised deterministically from ``seed`` (the global RNG is left untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            g, d = self.architecture.build(self.resolution, self.z_dim)
        return g.to(device), d.to(device)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description, for cache keys, the protocol and the manifest."""
        return {"architecture": self.architecture.name, "parameters": dict(self.architecture.params),
                "resolution": self.resolution, "z_dim": self.z_dim}


def has_batch_norm(module: nn.Module) -> bool:
    """Whether ``module`` contains a torch BatchNorm layer."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def stage_activations(stages: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """``x`` through every stage of a sequential network but the last, with the activation after each.

    What ``features`` returns for a network whose stages run one after another.
    """
    out = []
    for stage in list(stages)[:-1]:
        x = stage(x)
        out.append(x)
    return out
