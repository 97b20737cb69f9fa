"""Train the recognition network (``tganbench.metrics.recognition``) and write its weights next to it.

Run: ``python -m tganbench.metrics.train_recognition`` (about 10 minutes on a
2-core CPU). Every training image is rendered with seeds the embedded pairs do
not use and degraded afresh each epoch the way GAN samples are degraded; the
report at the end scores renders it never saw, clean and under each
degradation, and images that show no shape.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

import torch
import torch.nn.functional as F

from tganbench.data.shapes import SHAPES, render_shapes
from tganbench.metrics.recognition import CLASSES, WEIGHTS_PATH, RecognitionNet

TRAIN_SEED = 5000  # the embedded pairs render with seeds 1 and 2, the FD extractor from 1000
VALIDATION_SEED = 7000
NONE = CLASSES.index("none")


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _backgrounds(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Two-colour linear gradients like the renders' backgrounds, float in [0, 1]."""
    a, b = torch.rand(n, 3, 1, 1, generator=gen), torch.rand(n, 3, 1, 1, generator=gen)
    angle = _uniform(n, 0, 2 * math.pi, gen).view(n, 1, 1, 1)
    axis = (torch.arange(size) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    t = 0.5 + 0.5 * (x * torch.cos(angle) + y * torch.sin(angle)) / math.sqrt(2)
    return a * (1 - t) + b * t


def _smooth_noise(n: int, channels: int, size: int, gen: torch.Generator, coarsest: int = 2) -> torch.Tensor:
    """Random fields at a random coarse scale (``coarsest`` to size/2 cells), upsampled: noise in [0, 1]."""
    out = torch.empty(n, channels, size, size)
    coarse_sizes = torch.randint(coarsest, size // 2 + 1, (n,), generator=gen)
    for i, coarse in enumerate(coarse_sizes.tolist()):
        field = torch.rand(1, channels, coarse, coarse, generator=gen)
        out[i] = F.interpolate(field, size=(size, size), mode="bicubic", align_corners=False)[0]
    return out.clamp(0, 1)


TINY = (0.12, 0.3)  # sizes well below the pairs' (``SIZES``): a speck is not a shape of the family


def render_none(n: int, size: int, seed: int) -> torch.Tensor:
    """Images showing no single shape of the pairs' sizes, uint8: white noise, smooth noise, bare
    backgrounds, irregular smears, and specks (shapes far smaller than any the pairs draw)."""
    gen = torch.Generator().manual_seed(seed)
    kind = torch.randint(0, 5, (n,), generator=gen)
    images = torch.rand(n, 3, size, size, generator=gen)  # kind 0: white noise
    smooth = _smooth_noise(n, 3, size, gen)
    backgrounds = _backgrounds(n, size, gen)
    # Irregular smears of a shape's size: a disk's distance field bent by low-frequency noise, in one
    # colour over a background (bent enough that none is round).
    axis = (torch.arange(size) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    centre = _uniform(2 * n, -0.3, 0.3, gen).view(n, 2, 1, 1)
    radius = torch.where(torch.rand(n, generator=gen) < 0.5, _uniform(n, 0.3, 0.7, gen), _uniform(n, *TINY, gen))
    radius = radius.view(n, 1, 1, 1)
    distance = torch.sqrt((x - centre[:, :1]) ** 2 + (y - centre[:, 1:]) ** 2)
    bend = _uniform(n, 1.2, 2.2, gen).view(n, 1, 1, 1) * (_smooth_noise(n, 1, size, gen, coarsest=4) - 0.5)
    mask = (0.5 + (1 - distance / radius + bend) * size / 4).clamp(0, 1)
    colour = torch.rand(n, 3, 1, 1, generator=gen)
    smears = backgrounds * (1 - mask) + colour * mask
    images = torch.where((kind == 1).view(n, 1, 1, 1), smooth, images)
    images = torch.where((kind == 2).view(n, 1, 1, 1), backgrounds, images)
    images = torch.where((kind == 3).view(n, 1, 1, 1), smears, images)
    images = (images * 255).round().to(torch.uint8)
    specks = kind == 4
    families = torch.randint(0, len(SHAPES), (n,), generator=gen)
    for index, shape in enumerate(SHAPES):
        chosen = specks & (families == index)
        if chosen.any():
            images[chosen] = render_shapes(shape, int(chosen.sum()), size, seed + 1 + index, sizes=TINY)
    return images


def make_dataset(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean 32x32 renders of every shape family (a quarter of them rendered at 16x16 and upsampled) and
    ``none`` images, with labels."""
    images, labels = [], []
    low = per_class // 4
    for label, shape in enumerate(SHAPES):
        images.append(render_shapes(shape, per_class - low, 32, seed + label))
        small = render_shapes(shape, low, 16, seed + 50 + label).float()
        images.append(F.interpolate(small, size=32, mode="nearest").round().to(torch.uint8))
        labels.append(torch.full((per_class,), label))
    images.append(render_none(per_class, 32, seed + 99))
    labels.append(torch.full((per_class,), NONE))
    return torch.cat(images), torch.cat(labels)


# Each degradation maps float images in [0, 1] (N, 3, 32, 32) and a generator to degraded images.
def blur(x: torch.Tensor, gen: torch.Generator, sigma: torch.Tensor | None = None) -> torch.Tensor:
    """Gaussian blur with a per-image sigma of 0.4-1.6 pixels."""
    n = len(x)
    sigma = _uniform(n, 0.4, 1.6, gen) if sigma is None else sigma
    offsets = torch.arange(-4, 5).float()
    kernels = torch.exp(-offsets[None] ** 2 / (2 * sigma[:, None] ** 2))
    kernels = kernels / kernels.sum(1, keepdim=True)
    # One depthwise convolution per direction, with each image's kernel repeated over its three channels.
    weights = kernels.repeat_interleave(3, dim=0)
    flat = F.pad(x, (4, 4, 4, 4), mode="replicate").reshape(1, n * 3, x.shape[2] + 8, x.shape[3] + 8)
    rows = F.conv2d(flat, weights.view(n * 3, 1, 1, 9), groups=n * 3)
    return F.conv2d(rows, weights.view(n * 3, 1, 9, 1), groups=n * 3).view_as(x)


def resample(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Down to 10-20 pixels and back up (bilinear or nearest): lost detail and blocky edges."""
    size = int(torch.randint(10, 21, (1,), generator=gen))
    small = F.interpolate(x, size=size, mode="area")
    mode = "nearest" if torch.rand(1, generator=gen) < 0.5 else "bilinear"
    return F.interpolate(small, size=32, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))


def noise(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Additive Gaussian pixel noise, sigma 0.02-0.12."""
    sigma = _uniform(len(x), 0.02, 0.12, gen).view(-1, 1, 1, 1)
    return x + sigma * torch.randn(x.shape, generator=gen)


def low_contrast(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Contrast toward each image's mean colour, factor 0.35-0.9."""
    factor = _uniform(len(x), 0.35, 0.9, gen).view(-1, 1, 1, 1)
    mean = x.mean((2, 3), keepdim=True)
    return mean + factor * (x - mean)


def checkerboard(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A period-2 or period-4 checkerboard or grid pattern of amplitude 0.03-0.12 (upsampling artefacts)."""
    period = 2 if torch.rand(1, generator=gen) < 0.5 else 4
    index = torch.arange(32)
    rows = ((index // (period // 2)) % 2).float()
    pattern = rows[:, None] * rows[None, :] if torch.rand(1, generator=gen) < 0.5 else (rows[:, None] + rows[None, :]) % 2
    amplitude = _uniform(len(x), 0.03, 0.12, gen).view(-1, 1, 1, 1)
    colour = torch.rand(len(x), 3, 1, 1, generator=gen) * 2 - 1
    return x + amplitude * colour * (pattern - 0.5)


def warp(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A smooth random displacement of up to about 1.2 pixels: wobbly edges."""
    n = len(x)
    field = torch.randn(n, 2, 4, 4, generator=gen) * _uniform(n, 0.2, 1.2, gen).view(n, 1, 1, 1) * (2 / 32)
    field = F.interpolate(field, size=32, mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    axis = (torch.arange(32) + 0.5) / 32 * 2 - 1
    y, x_ = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([x_, y], dim=-1)[None] + field
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def colour_shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-channel gain and offset, and a desaturation toward grey."""
    n = len(x)
    gain = _uniform(n * 3, 0.8, 1.2, gen).view(n, 3, 1, 1)
    offset = _uniform(n * 3, -0.1, 0.1, gen).view(n, 3, 1, 1)
    grey = x.mean(1, keepdim=True)
    saturation = _uniform(n, 0.3, 1.0, gen).view(n, 1, 1, 1)
    return (grey + saturation * (x - grey)) * gain + offset


DEGRADATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "blur": blur, "resample": resample, "noise": noise, "low-contrast": low_contrast,
    "checkerboard": checkerboard, "warp": warp, "colour-shift": colour_shift,
}
PROBABILITIES = {"blur": 0.45, "resample": 0.25, "noise": 0.3, "low-contrast": 0.3,
                 "checkerboard": 0.2, "warp": 0.4, "colour-shift": 0.3}
ORDER = ("warp", "resample", "blur", "colour-shift", "low-contrast", "checkerboard", "noise")


def degrade(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random mixtures of the degradations (each with its own probability per image), as uint8."""
    x = images.float() / 255
    for name in ORDER:
        chosen = torch.rand(len(x), generator=gen) < PROBABILITIES[name]
        if chosen.any():
            x[chosen] = DEGRADATIONS[name](x[chosen], gen)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def accuracy(net: RecognitionNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``images`` whose predicted class is their label."""
    net.eval()
    predicted = torch.cat([net(images[i : i + 500]).argmax(1) for i in range(0, len(images), 500)])
    return float((predicted == labels).float().mean())


def validation_report(net: RecognitionNet, per_class: int = 400) -> list[tuple[str, float]]:
    """Accuracy on unseen renders: clean, under each degradation alone, under random mixtures; and noise."""
    images, labels = make_dataset(per_class, VALIDATION_SEED)
    gen = torch.Generator().manual_seed(VALIDATION_SEED)
    rows = [("clean", accuracy(net, images, labels))]
    for name, function in DEGRADATIONS.items():
        degraded = (function(images.float() / 255, gen).clamp(0, 1) * 255).round().to(torch.uint8)
        rows.append((name, accuracy(net, degraded, labels)))
    strong = (blur(images.float() / 255, gen, torch.full((len(images),), 1.5)) * 255).round().to(torch.uint8)
    rows.append(("blur sigma 1.5", accuracy(net, strong, labels)))
    rows.append(("random mixtures", accuracy(net, degrade(images, gen), labels)))
    white = (torch.rand(1000, 3, 32, 32, generator=gen) * 255).round().to(torch.uint8)
    rows.append(("white noise called none", accuracy(net, white, torch.full((1000,), NONE))))
    return rows


def main(argv: list[str] | None = None) -> None:
    """Train, print the validation report, save the weights."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-class", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default=str(WEIGHTS_PATH))
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    images, labels = make_dataset(args.per_class, TRAIN_SEED)
    net = RecognitionNet()
    batch = 128
    steps_per_epoch = len(images) // batch
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=args.epochs * steps_per_epoch)
    for epoch in range(args.epochs):
        net.train()
        # About one image in five stays clean, so clean renders are learnt too.
        degraded = degrade(images, gen)
        order = torch.randperm(len(images), generator=gen)
        for i in range(steps_per_epoch):
            index = order[i * batch : (i + 1) * batch]
            loss = F.cross_entropy(net(degraded[index]), labels[index], label_smoothing=0.05)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.4f}", flush=True)
    for name, value in validation_report(net):
        print(f"validation, {name}: {value:.4f}")
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
