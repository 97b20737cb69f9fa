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

``prepare`` puts a :class:`ModulatedConv2d` around every ``nn.Conv2d`` of the
modulated stages and adds the gammas and betas to G's optimizer; the loop
copies its moving average of G after ``prepare``, so the evaluated generator
is modulated too. The wrapped convolution's own weight and bias, and every
other weight and buffer of those stages (BatchNorm included), stay
bit-identical. docs/strategies.md lists every difference from the original.
"""

from __future__ import annotations

import torch
from torch import nn

from tganbench.hookspecs import hookimpl
from tganbench.step import TrainState
from tganbench.strategy import Strategy, stages


class ModulatedConv2d(nn.Module):
    """A frozen ``nn.Conv2d`` whose kernel is modulated per (output, input) channel pair: gamma * W + beta.

    ``gamma`` starts at ones and ``beta`` at zeros, so the module first computes
    exactly what ``conv`` computes. The convolution's bias is used as it is.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        shape = (conv.out_channels, conv.in_channels // conv.groups, 1, 1)
        options = {"device": conv.weight.device, "dtype": conv.weight.dtype}
        self.gamma = nn.Parameter(torch.ones(shape, **options))
        self.beta = nn.Parameter(torch.zeros(shape, **options))

    def kernel(self) -> torch.Tensor:
        """The modulated kernel, gamma * W + beta (each scale and shift broadcast over the k x k taps)."""
        return self.gamma * self.conv.weight + self.beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped convolution (its stride, padding, padding mode and bias) with the modulated kernel."""
        return self.conv._conv_forward(x, self.kernel(), self.conv.bias)


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
        self.modulated: list[ModulatedConv2d] = []

    def _modulated_stages(self, g: nn.Module) -> list[nn.Module]:
        """The ``layers`` G stages nearest the image."""
        return list(g.stages)[-self.params["layers"] :]

    def _refusal(self, architecture: str, g: nn.Module) -> str | None:
        count, available = self.params["layers"], len(list(g.stages))
        if not any(isinstance(m, nn.Conv2d) for stage in g.stages for m in stage.modules()):
            return f"needs Conv2d layers in G's stages to modulate, and {architecture}'s G has none"
        if count >= available:
            return (f"modulates the {count} G stages nearest the image and trains at least one below them, "
                    f"and {architecture}'s G has {available} stages")
        if not any(isinstance(m, nn.Conv2d) for stage in self._modulated_stages(g) for m in stage.modules()):
            return f"the {count} G stages of {architecture} nearest the image have no Conv2d layer to modulate"
        return None

    def supports(self, architecture: str, g: nn.Module, d: nn.Module) -> str | None:
        """G needs Conv2d layers in the modulated stages, and at least one stage below them that trains."""
        return self._refusal(architecture, g)

    def frozen(self, g: nn.Module, d: nn.Module) -> list[nn.Module]:
        """Every weighted module of the modulated G stages (not the modulation), and D's lowest ``d_layers`` stages."""
        frozen_d = stages(d, self.params["d_layers"])
        if self._refusal("this architecture", g):
            return frozen_d  # supports() refuses these models, so the run skips them with its reason
        weighted = [
            m for stage in self._modulated_stages(g) for m in stage.modules()
            if not isinstance(m, ModulatedConv2d)
            and (list(m.parameters(recurse=False)) or list(m.buffers(recurse=False)))
        ]
        return weighted + frozen_d

    def prepare(self, state: TrainState) -> None:
        """Wrap each Conv2d of the modulated stages in a :class:`ModulatedConv2d`; its gamma and beta train with G."""
        refusal = self._refusal("this architecture", state.g)
        if refusal:
            raise RuntimeError(f"adafm: {refusal}")
        if state.g_opt is None:
            raise RuntimeError("adafm: no weight of G below the modulated stages trains")
        targets = {id(m) for stage in self._modulated_stages(state.g) for m in stage.modules()
                   if isinstance(m, nn.Conv2d)}
        self.modulated = []
        for parent in list(state.g.modules()):  # from G down, so that a stage that is itself a Conv2d is found too
            if isinstance(parent, ModulatedConv2d):
                continue  # its convolution is already modulated
            for name, child in list(parent.named_children()):
                if id(child) in targets:
                    wrapper = ModulatedConv2d(child)
                    setattr(parent, name, wrapper)
                    self.modulated.append(wrapper)
        state.g_opt.add_param_group({"params": [p for m in self.modulated for p in (m.gamma, m.beta)]})


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``adafm``."""
    register(AdaFM)
