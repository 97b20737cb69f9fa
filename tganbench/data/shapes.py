"""Procedural shape images: the embedded, download-free data behind the built-in pairs.

Every image is one anti-aliased shape of a random colour, size, position and
rotation on a two-colour linear-gradient background. Families differ only in the
shape, so a source family and a target family share colour and layout statistics
(transfer is plausible) but not geometry (transfer is not trivial).

Shapes are large (``SIZES``: a disk's radius, a triangle's circumradius, from
0.6 to 0.85 of half the image) and near the centre (``CENTRES``): at 32x32 a
triangle's side is then 17-24 pixels. With the smaller, freely placed shapes of
earlier versions (0.35-0.65, centres up to 0.3 off) a 32x32 DCGAN trained for
thousands of steps on a CPU still drew blobs; see docs/recipe.md.
"""

from __future__ import annotations

import math

import torch

SHAPES = ("disk", "square", "triangle", "ring", "cross")
SIZES = (0.6, 0.85)  # the shape's size, in half image widths
CENTRES = 0.15  # the centre's largest offset from the image centre, in half image widths


def _signed_distance(shape: str, u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) of ``shape`` of size ``r`` in local coordinates."""
    if shape == "disk":
        return torch.sqrt(u * u + v * v) - r
    if shape == "square":
        return torch.maximum(u.abs(), v.abs()) - 0.85 * r
    if shape == "triangle":
        sides = []
        for k in range(3):
            angle = math.pi / 2 + 2 * math.pi * k / 3
            sides.append(u * math.cos(angle) + v * math.sin(angle))
        return torch.stack(sides).amax(0) - 0.5 * r
    if shape == "ring":
        return (torch.sqrt(u * u + v * v) - 0.75 * r).abs() - 0.25 * r
    if shape == "cross":
        bar_h = torch.maximum(u.abs() - r, v.abs() - 0.3 * r)
        bar_v = torch.maximum(u.abs() - 0.3 * r, v.abs() - r)
        return torch.minimum(bar_h, bar_v)
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def render_shapes(
    shape: str, count: int, resolution: int, seed: int, sizes: tuple[float, float] = SIZES
) -> torch.Tensor:
    """Render ``count`` images of one shape family as a uint8 tensor (N, 3, H, W).

    ``sizes`` is the range shape sizes are drawn from (the pairs use ``SIZES``).

    Deterministic for ``seed`` on every machine: parameters are drawn on the CPU
    from a private generator and the drawing is done in float64, so last-bit
    differences between math kernels (which do occur between processes in
    float32) cannot flip a pixel's rounding.
    """
    return render_shapes_with_parameters(shape, count, resolution, seed, sizes)[0]


def render_shapes_with_parameters(
    shape: str, count: int, resolution: int, seed: int, sizes: tuple[float, float] = SIZES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like ``render_shapes``, also returning each image's drawing parameters (N, 9).

    Columns: shape colour (3), mean background colour (3), centre x, centre y, size;
    the feature extractor's training script learns to predict them.
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float, *shape_: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, *shape_, generator=gen).double()

    bg_a, bg_b = uniform(0, 1, 3), uniform(0, 1, 3)
    bg_angle = uniform(0, 2 * math.pi)
    fg = uniform(0, 1, 3)
    # Keep the shape visible: flip a colour that is too close to the background.
    too_close = (fg - (bg_a + bg_b) / 2).abs().mean(1, keepdim=True) < 0.3
    fg = torch.where(too_close, 1 - fg, fg)
    cx, cy = uniform(-CENTRES, CENTRES), uniform(-CENTRES, CENTRES)
    size = uniform(*sizes)
    rotation = uniform(0, 2 * math.pi)

    axis = (torch.arange(resolution, dtype=torch.float64) + 0.5) / resolution * 2 - 1
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    x, y = x[None], y[None]

    def per_image(t: torch.Tensor) -> torch.Tensor:
        return t.view(count, 1, 1)

    cos, sin = per_image(torch.cos(rotation)), per_image(torch.sin(rotation))
    dx, dy = x - per_image(cx), y - per_image(cy)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    distance = _signed_distance(shape, u, v, per_image(size))
    pixel = 2.0 / resolution
    alpha = (0.5 - distance / pixel).clamp(0, 1)[:, None]

    t = 0.5 + 0.5 * (x * per_image(torch.cos(bg_angle)) + y * per_image(torch.sin(bg_angle))) / math.sqrt(2)
    t = t[:, None]
    background = bg_a[:, :, None, None] * (1 - t) + bg_b[:, :, None, None] * t
    image = background * (1 - alpha) + fg[:, :, None, None] * alpha
    images = (image * 255).round().clamp(0, 255).to(torch.uint8)
    parameters = torch.cat([fg, (bg_a + bg_b) / 2, cx[:, None], cy[:, None], size[:, None]], dim=1)
    return images, parameters.float()
