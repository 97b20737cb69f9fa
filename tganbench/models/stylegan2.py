"""``stylegan2``: StyleGAN2 (Karras et al., CVPR 2020) in plain PyTorch, with rosinality's state-dict layout.

The generator is the skip architecture: a mapping network (pixel norm, then
``n_mlp`` equalised linear layers at a hundredth of the learning rate) turns
z into a style w; a learnt 4x4 constant goes through modulated, demodulated
3x3 convolutions with per-pixel noise, two per resolution, and every
resolution adds its RGB image (a 1x1 modulated convolution) to the upsampled
RGB image of the one below. The discriminator is the residual one: a 1x1
convolution from RGB, one residual block per halving (blurred strided
convolutions, the skip path scaled by 1/sqrt(2)), the minibatch standard
deviation as an extra channel at 4x4, a 3x3 convolution and two linear layers.

Parameter and buffer names are those of rosinality/stylegan2-pytorch (``style.1.weight``,
``conv1.conv.modulation.bias``, ``convs.0.conv.blur.kernel``, ``to_rgbs.0.upsample.kernel``,
``noises.noise_0``; D: ``convs.1.conv2.1.weight``, ``final_linear.1.bias``, ...),
so the checkpoints the few-shot papers start from load without renaming
(``--source-checkpoint``; docs/checkpoints.md). A parity test runs both on the
same weights (tests/fixtures/stylegan2_parity/). The code here is written for
tganbench: resampling is a zero-insertion / padding / depthwise-convolution
function instead of the CUDA kernel, and the modulated convolution scales the
input and the output instead of building one kernel per sample, which
computes the same thing.

Stages, lowest first (docs/strategies.md, "Models", `stylegan2`):

- G: ``mapping`` (the mapping network), then one per resolution: ``4x4``
  (the constant, its convolution and RGB layer), ``8x8`` (the upsampling
  convolution, the second convolution and the RGB layer of 8x8), ... up to
  the output resolution. ``freeze-g[layers=2]`` freezes the mapping network
  and the 4x4 block.
- D: one per resolution from the image down: the first (``32x32`` at 32 px)
  is the RGB layer and the residual block that halves 32x32, then one per
  residual block, and the last (``4x4``) is the minibatch standard deviation,
  the 3x3 convolution and the linear layers that give the logit.

Deviations from the StyleGAN2 training code, and why:

- Noise inputs use the fixed noise buffers (``noises.noise_i``) in training
  as in evaluation (rosinality's ``randomize_noise=False``); StyleGAN2 draws
  fresh noise at every training forward. Every random number of a cell comes
  from the cell's own generator, so that a cell repeats exactly and a step
  can be captured as a CUDA graph, and a model has no access to it; the
  noise strengths (``noise.weight``) still train.
- No style mixing, path-length regularisation or lazy R1: the loop is the
  same for every architecture (``--r1-gamma`` applies R1 at every step).
- The minibatch standard deviation groups at most 4 samples as the original,
  and fewer (the largest divisor of the batch up to 4) where the batch is
  not a multiple of 4, where the original fails.
- D returns logits of shape (N,), as the model contract says, not (N, 1).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from tganbench.hookspecs import hookimpl
from tganbench.models.base import Architecture, stage_activations

RESOLUTIONS = (16, 32, 64, 128, 256, 512, 1024)
BLUR_TAPS = (1, 3, 3, 1)  # the binomial filter StyleGAN2 resamples with
STDDEV_GROUP = 4


def blur_kernel(taps: tuple[int, ...] = BLUR_TAPS, gain: float = 1.0) -> torch.Tensor:
    """The separable 2-D filter of ``taps`` (outer product), normalised to sum ``gain``."""
    row = torch.tensor(taps, dtype=torch.float32)
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum() * gain


def resample(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
             pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, filter every channel with ``kernel``, then keep every ``down``-th pixel.

    ``pad`` = (before, after) on both axes; a negative value crops. The kernel is
    flipped, so this is a true convolution (it matters only for asymmetric filters).
    """
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    before, after = pad
    x = F.pad(x, [max(before, 0), max(after, 0)] * 2)
    if before < 0 or after < 0:
        x = x[:, :, max(-before, 0): x.shape[2] - max(-after, 0), max(-before, 0): x.shape[3] - max(-after, 0)]
    taps = kernel.flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    x = F.conv2d(x, taps, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


class Blur(nn.Module):
    """The blur filter around a strided or transposed convolution (buffer ``kernel``, as in rosinality's layout)."""

    def __init__(self, pad: tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", blur_kernel(gain=gain))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter ``x`` at its own resolution."""
        return resample(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x upsampling of the RGB skip image: zero insertion then the blur filter (gain 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", blur_kernel(gain=4.0))
        self.pad = (2, 1)  # for a 4-tap filter and factor 2: output exactly twice the input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` at twice its resolution."""
        return resample(x, self.kernel, up=2, pad=self.pad)


class BiasedLeakyReLU(nn.Module):
    """Add a per-channel ``bias``, leaky ReLU (slope 0.2), times sqrt(2) to keep the signal's scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Activate ``x`` (N, C, ...)."""
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return F.leaky_relu(x + self.bias.reshape(shape), 0.2) * math.sqrt(2)


class EqualLinear(nn.Module):
    """A linear layer with an equalised learning rate: weights drawn N(0, 1/lr_mul²), scaled at run time.

    With ``activate`` the bias goes through :class:`BiasedLeakyReLU`'s activation.
    """

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x @ (scale * W)^T + lr_mul * b, activated if asked."""
        if self.activate:
            out = F.linear(x, self.weight * self.scale) + self.bias * self.lr_mul
            return F.leaky_relu(out, 0.2) * math.sqrt(2)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """A convolution with an equalised learning rate (weights N(0, 1), scaled by 1/sqrt(fan-in) at run time)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x``."""
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's convolution: input channels scaled by a style, output channels demodulated to unit variance.

    ``upsample`` makes it a stride-2 transposed convolution followed by the blur
    filter (the resolution doubles). Scaling the input by s and the output by
    the demodulation coefficient equals convolving with the per-sample kernel
    W * s / ||W * s|| that the original builds.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.demodulate, self.upsample = demodulate, upsample
        self.padding = kernel_size // 2
        if upsample:
            # the transposed convolution's output is 2H + k - 2; this padding brings the blurred result to 2H
            extra = len(BLUR_TAPS) - 2 - (kernel_size - 1)
            self.blur = Blur(pad=((extra + 1) // 2 + 1, extra // 2 + 1), gain=4.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` (N, C_in, H, W) under styles ``w`` (N, style_dim)."""
        style = self.modulation(w)  # (N, C_in)
        weight = self.weight[0] * self.scale  # (C_out, C_in, k, k)
        x = x * style[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            energy = (weight.square().sum(dim=(2, 3))[None] * style.square()[:, None, :]).sum(dim=2)  # (N, C_out)
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        return out


class NoiseInjection(nn.Module):
    """Add a noise image times a learnt strength ``weight`` (starting at 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x`` plus the scaled ``noise`` (1 or N, 1, H, W)."""
        return x + self.weight * noise


class StyledConv(nn.Module):
    """Modulated convolution, noise, biased leaky ReLU: one layer of the synthesis network."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = BiasedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The layer's output for input ``x``, styles ``w`` and noise image ``noise``."""
        return self.activate(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    """1x1 modulated convolution (not demodulated) to RGB plus a bias, added to the upsampled image from below."""

    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """This resolution's RGB image, plus ``skip`` (the image of the resolution below) upsampled."""
        rgb = self.conv(x, w) + self.bias
        return rgb if skip is None else rgb + self.upsample(skip)


class PixelNorm(nn.Module):
    """Normalise each latent to unit root mean square."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` divided by its RMS over features."""
        return z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)


class ConstantInput(nn.Module):
    """The learnt 4x4 input of the synthesis network (parameter ``input``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))

    def forward(self, batch: int) -> torch.Tensor:
        """The constant repeated ``batch`` times."""
        return self.input.expand(batch, -1, -1, -1)


def channel_counts(resolution: int, width: int, channel_max: int) -> dict[int, int]:
    """Channels at each resolution 4 .. ``resolution``: ``width`` at the output, doubling per halving, capped."""
    return {4 * 2 ** i: min(channel_max, width * resolution // (4 * 2 ** i))
            for i in range(int(math.log2(resolution)) - 1)}


class Generator(nn.Module):
    """z (N, z_dim) -> image (N, 3, R, R); the style dimension equals ``z_dim``.

    Images are not squashed: like the original, G's output is unbounded and
    trained toward [-1, 1] (the evaluation clamps when it converts to uint8).
    """

    def __init__(self, resolution: int, z_dim: int, width: int, channel_max: int, n_mlp: int) -> None:
        super().__init__()
        self.resolution, self.z_dim = resolution, z_dim
        channels = channel_counts(resolution, width, channel_max)
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(z_dim, z_dim, lr_mul=0.01, activate=True)
                                                  for _ in range(n_mlp)])
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], z_dim)
        self.to_rgb1 = ToRGB(channels[4], z_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        sizes = sorted(channels)
        self.noises.register_buffer("noise_0", torch.randn(1, 1, 4, 4))
        for i, (below, size) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.convs.append(StyledConv(channels[below], channels[size], z_dim, upsample=True))
            self.convs.append(StyledConv(channels[size], channels[size], z_dim))
            self.to_rgbs.append(ToRGB(channels[size], z_dim))
            for layer in (2 * i + 1, 2 * i + 2):
                self.noises.register_buffer(f"noise_{layer}", torch.randn(1, 1, size, size))

    @property
    def stages(self) -> nn.Sequential:
        """``mapping``, ``4x4``, ``8x8``, ... (lowest first); each holds the modules of that stage."""
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        blocks["mapping"] = self.style
        blocks["4x4"] = nn.ModuleList([self.input, self.conv1, self.to_rgb1])
        for i, to_rgb in enumerate(self.to_rgbs):
            size = 8 * 2 ** i
            blocks[f"{size}x{size}"] = nn.ModuleList([self.convs[2 * i], self.convs[2 * i + 1], to_rgb])
        return nn.Sequential(blocks)

    def _noise(self, layer: int) -> torch.Tensor:
        return getattr(self.noises, f"noise_{layer}")

    def _synthesis(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The image and the features after each stage (the style w, then each resolution's activations)."""
        w = self.style(z)
        x = self.conv1(self.input(len(z)), w, self._noise(0))
        image = self.to_rgb1(x, w)
        features = [w, x]
        for i, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * i](x, w, self._noise(2 * i + 1))
            x = self.convs[2 * i + 1](x, w, self._noise(2 * i + 2))
            image = to_rgb(x, w, image)
            features.append(x)
        return image, features

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generate images from latents ``z``."""
        return self._synthesis(z)[0]

    def features(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Activations after every stage but the last: w (N, z_dim), then the 4x4, 8x8, ... feature maps."""
        return self._synthesis(z)[1][:-1]


class ConvLayer(nn.Sequential):
    """D's convolution: optional blur and stride 2, an equalised convolution, optional biased leaky ReLU.

    A ``Sequential`` so that parameter names follow rosinality's (``0.kernel``, ``1.weight``, ``2.bias``).
    ``bias`` is the activation's when it activates, the convolution's otherwise.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 bias: bool = True, activate: bool = True) -> None:
        layers: list[nn.Module] = []
        if downsample:
            extra = len(BLUR_TAPS) - 2 + kernel_size - 1
            layers.append(Blur(pad=((extra + 1) // 2, extra // 2)))
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=2 if downsample else 1,
                                  padding=0 if downsample else kernel_size // 2, bias=bias and not activate))
        if activate:  # the activation carries the bias (the original never activates without one)
            layers.append(BiasedLeakyReLU(out_channels))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3x3 convolutions, the second halving the resolution, plus a 1x1 strided skip; the sum over sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` at half its resolution."""
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


def minibatch_stddev(x: torch.Tensor, group: int = STDDEV_GROUP) -> torch.Tensor:
    """``x`` with one more channel: the mean standard deviation over features within groups of samples.

    Sample i belongs to group i mod (N / G), as in the original; G is the
    largest divisor of N up to ``group``.
    """
    n, c, h, w = x.shape
    size = max(g for g in range(1, min(group, n) + 1) if n % g == 0)
    grouped = x.reshape(size, n // size, c, h, w)
    spread = torch.sqrt(grouped.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # (N / G,)
    return torch.cat([x, spread.repeat(size)[:, None, None, None].expand(n, 1, h, w)], dim=1)


class _Epilogue(nn.Module):
    """D's last stage: minibatch standard deviation, 3x3 convolution, two linear layers, logits (N,)."""

    def __init__(self, final_conv: nn.Module, final_linear: nn.Module) -> None:
        super().__init__()
        self.final_conv, self.final_linear = final_conv, final_linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_linear(self.final_conv(minibatch_stddev(x)).flatten(1)).flatten()


class Discriminator(nn.Module):
    """image (N, 3, R, R) -> logit (N,): the residual StyleGAN2 discriminator."""

    def __init__(self, resolution: int, width: int, channel_max: int) -> None:
        super().__init__()
        self.resolution = resolution
        channels = channel_counts(resolution, width, channel_max)
        blocks: list[nn.Module] = [ConvLayer(3, channels[resolution], 1)]
        size = resolution
        while size > 4:
            blocks.append(ResBlock(channels[size], channels[size // 2]))
            size //= 2
        self.convs = nn.Sequential(*blocks)
        self.final_conv = ConvLayer(channels[4] + 1, channels[4], 3)
        self.final_linear = nn.Sequential(EqualLinear(channels[4] * 16, channels[4], activate=True),
                                          EqualLinear(channels[4], 1))

    @property
    def stages(self) -> nn.Sequential:
        """One stage per resolution from the image down (the first includes the RGB layer), then the 4x4 logit stage."""
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        size = self.resolution
        for i, block in enumerate(self.convs[1:]):
            blocks[f"{size}x{size}"] = nn.Sequential(self.convs[0], block) if i == 0 else block
            size //= 2
        blocks["4x4"] = _Epilogue(self.final_conv, self.final_linear)
        return nn.Sequential(blocks)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Score images: higher means "looks real"."""
        return self.stages(image)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Activations after every stage but the last (each residual block's output), finest first."""
        return stage_activations(self.stages, image)


class StyleGAN2(Architecture):
    """StyleGAN2 G (skip) and D (residual): ``width`` channels at the output resolution, doubling per halving
    up to ``channel_max``; ``n_mlp`` mapping layers; the style dimension is the run's ``--z-dim``.

    rosinality's ``channel_multiplier`` m is ``width = 16384 * m / resolution``
    (FFHQ at 256 px, m = 2: ``--width 128``; at 1024 px: ``--width 32``).
    """

    name = "stylegan2"
    description = "StyleGAN2 (skip G, residual D), rosinality's state-dict layout; 16-1024 px"
    parameters = {"width": 32, "channel_max": 512, "n_mlp": 8}

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        for key in ("width", "channel_max", "n_mlp"):
            if not isinstance(self.params[key], int) or self.params[key] < 1:
                raise ValueError(f"{key} must be a positive integer, got {self.params[key]}")

    def build(self, resolution: int, z_dim: int) -> tuple[Generator, Discriminator]:
        """A StyleGAN2 G and D at a power-of-two resolution from 16 to 1024."""
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(map(str, RESOLUTIONS))}, got {resolution}")
        width, channel_max = self.params["width"], self.params["channel_max"]
        return (Generator(resolution, z_dim, width, channel_max, self.params["n_mlp"]),
                Discriminator(resolution, width, channel_max))


@hookimpl
def tganbench_register_architectures(register) -> None:
    """Register ``stylegan2``."""
    register(StyleGAN2)
