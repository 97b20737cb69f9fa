"""``adafm``: adaptive filter modulation (Zhao, Cong & Carin, "On Leveraging Pretrained GANs for
Generation with Limited Data", ICML 2020).

The G stages nearest the image hold general, transferable filters: their
weights stay frozen, and each convolution kernel W (out x in x k x k) is
modulated by a trainable scale and shift per (output, input) channel pair,

    W' = gamma * W + beta,    gamma, beta of shape (out, in, 1, 1), starting at 1 and 0,

as in the authors' code (github.com/MiaoyunZhao/GANTransferLimitedData,
``gan_training/models/resnet2_AdaFM.py``, class ``AdaFM``). The G stages
nearer z fine-tune; D's lowest ``d_layers`` stages stay frozen and the rest
fine-tunes, as the original freezes its discriminator's layers nearest the
image.

``prepare`` re-parametrises the kernel of every convolution of the modulated
stages (``torch.nn.utils.parametrize``: the module's ``weight`` becomes
gamma * W + beta, W stored as ``parametrizations.weight.original``), on any
architecture whose convolutions keep their kernel in ``weight`` with the
channel pair in front of the two spatial axes: ``nn.Conv2d`` (out, in, k, k)
and StyleGAN2's modulated convolutions (1, out, in, k, k), modulated before
the style scales them. It adds the gammas and betas to G's optimizer; the
loop copies its moving average of G after ``prepare``, so the evaluated
generator is modulated too. The kernels themselves, and every other weight
and buffer of those stages (BatchNorm, StyleGAN2's style layers), stay
bit-identical. docs/strategies.md lists every difference from the original.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from tganbench.hookspecs import hookimpl
from tganbench.step import TrainState
from tganbench.strategy import Strategy, stages


class KernelModulation(nn.Module):
    """The parametrisation W -> gamma * W + beta, one scale and shift per (output, input) channel pair.

    ``gamma`` starts at ones and ``beta`` at zeros, so a modulated convolution
    first computes exactly what it computed before.
    """

    def __init__(self, kernel: torch.Tensor) -> None:
        super().__init__()
        shape = (*kernel.shape[:-2], 1, 1)
        self.gamma = nn.Parameter(torch.ones(shape, device=kernel.device, dtype=kernel.dtype))
        self.beta = nn.Parameter(torch.zeros(shape, device=kernel.device, dtype=kernel.dtype))

    def forward(self, kernel: torch.Tensor) -> torch.Tensor:
        """The modulated kernel (each scale and shift broadcast over the k x k taps)."""
        return self.gamma * kernel + self.beta


def convolutions(modules: list[nn.Module]) -> list[nn.Module]:
    """The modules under ``modules`` that hold a convolution kernel: a ``weight`` parameter with 4 or more axes."""
    found = {}
    for module in modules:
        for m in module.modules():
            weight = m._parameters.get("weight")
            if weight is not None and weight.dim() >= 4:
                found[id(m)] = m
    return list(found.values())


class AdaFM(Strategy):
    """Source checkpoint; the G stages nearest the image frozen with AdaFM, the others and most of D fine-tune."""

    name = "adafm"
    description = ("from source, the `layers` G stages nearest the image frozen with a trainable scale/shift per "
                   "kernel (AdaFM); lower G stages and D above its lowest `d_layers` stages train")
    parameters = {"layers": 3, "d_layers": 1}

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        if self.params["layers"] < 1:
            raise ValueError(f"layers must be at least 1, got {self.params['layers']}")
        if self.params["d_layers"] < 0:
            raise ValueError(f"d_layers must be non-negative, got {self.params['d_layers']}")
        self.modulated: list[KernelModulation] = []

    def _modulated_stages(self, g: nn.Module) -> list[nn.Module]:
        """The ``layers`` G stages nearest the image."""
        return list(g.stages)[-self.params["layers"] :]

    def _refusal(self, architecture: str, g: nn.Module) -> str | None:
        count, available = self.params["layers"], len(list(g.stages))
        if not convolutions(list(g.stages)):
            return f"needs convolution kernels in G's stages to modulate, and {architecture}'s G has none"
        if count >= available:
            return (f"modulates the {count} G stages nearest the image and trains at least one below them, "
                    f"and {architecture}'s G has {available} stages")
        if not convolutions(self._modulated_stages(g)):
            return f"the {count} G stages of {architecture} nearest the image have no convolution to modulate"
        return None

    def supports(self, architecture: str, g: nn.Module, d: nn.Module) -> str | None:
        """G needs convolutions in the modulated stages, and at least one stage below them that trains."""
        return self._refusal(architecture, g)

    def frozen(self, g: nn.Module, d: nn.Module) -> list[nn.Module]:
        """Every weighted module of the modulated G stages (not the modulation), and D's lowest ``d_layers`` stages."""
        frozen_d = stages(d, self.params["d_layers"])
        if self._refusal("this architecture", g):
            return frozen_d  # supports() refuses these models, so the run skips them with its reason
        weighted = [
            m for stage in self._modulated_stages(g) for m in stage.modules()
            if not isinstance(m, KernelModulation)
            and (list(m.parameters(recurse=False)) or list(m.buffers(recurse=False)))
        ]
        return weighted + frozen_d

    def prepare(self, state: TrainState) -> None:
        """Modulate the kernel of each convolution of the modulated stages; the gammas and betas train with G."""
        refusal = self._refusal("this architecture", state.g)
        if refusal:
            raise RuntimeError(f"adafm: {refusal}")
        if state.g_opt is None:
            raise RuntimeError("adafm: no weight of G below the modulated stages trains")
        self.modulated = []
        for module in convolutions(self._modulated_stages(state.g)):
            modulation = KernelModulation(module.weight)
            parametrize.register_parametrization(module, "weight", modulation)
            self.modulated.append(modulation)
        state.g_opt.add_param_group({"params": [p for m in self.modulated for p in (m.gamma, m.beta)]})


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``adafm``."""
    register(AdaFM)
