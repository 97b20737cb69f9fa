"""``diffaugment``: DiffAugment (Zhao et al., NeurIPS 2020), a built-in augmentation plugin.

With a few hundred training images the discriminator memorises them within a
few hundred steps and its gradients stop telling the generator anything useful.
DiffAugment applies the same random, differentiable transformations to every
image the discriminator sees, real and generated, in the discriminator's step
and in the generator's, so the discriminator cannot memorise and the generator
is not taught to produce augmented images. tganbench implements the paper's
three policies from their description (``diffaugment[policy=color,translation,cutout]``, applied
in the order given):

- ``color``: brightness shift in [-0.5, 0.5], saturation factor in [0, 2],
  contrast factor in [0.5, 1.5], one draw per image each;
- ``translation``: a shift of up to 1/8 of the image size along each axis,
  whole pixels, filling with zeros;
- ``cutout``: a zero square of half the image size at a random position
  (clipped at the border).

Every random number comes from the training state's draws, so a step with
augmentation can still be captured as a CUDA graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from tganbench.augmentation import Augmentation
from tganbench.hookspecs import hookimpl

if TYPE_CHECKING:
    from tganbench.step import TrainState


def color(x: torch.Tensor, state: TrainState) -> torch.Tensor:
    """Random brightness, saturation and contrast per image (images in [-1, 1])."""
    n = x.shape[0]
    x = x + (state.rand(n, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (state.rand(n, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (state.rand(n, 1, 1, 1) + 0.5) + mean


def translation(x: torch.Tensor, state: TrainState, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its size along each axis, filling with zeros."""
    n, _, height, width = x.shape
    reach_y, reach_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift_y = state.randint(2 * reach_y + 1, n, 1, 1) - reach_y
    shift_x = state.randint(2 * reach_x + 1, n, 1, 1) - reach_x
    rows = torch.arange(height, device=x.device).view(1, height, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width)
    # Indices into the image padded by one zero pixel on each side; out-of-range reads land on the padding.
    source_rows = (rows - shift_y + 1).clamp(0, height + 1).expand(n, height, width)
    source_cols = (cols - shift_x + 1).clamp(0, width + 1).expand(n, height, width)
    padded = F.pad(x, (1, 1, 1, 1))
    flat = (source_rows * (width + 2) + source_cols).reshape(n, 1, height * width).expand(-1, x.shape[1], -1)
    out = padded.reshape(n, x.shape[1], -1).gather(2, flat)
    return out.reshape(x.shape)


def cutout(x: torch.Tensor, state: TrainState, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` of the image size at a random centre in each image."""
    n, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    centre_y = state.randint(height + (1 - size_y % 2), n, 1, 1)
    centre_x = state.randint(width + (1 - size_x % 2), n, 1, 1)
    top, left = centre_y - size_y // 2, centre_x - size_x // 2
    rows = torch.arange(height, device=x.device).view(1, height, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPERATIONS = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment(Augmentation):
    """The same random colour, translation and cutout on every image D sees, real and generated."""

    name = "diffaugment"
    description = "DiffAugment (Zhao et al., 2020): policy color,translation,cutout on every D input"
    parameters = {"policy": "color,translation,cutout"}
    POLICIES = tuple(OPERATIONS)

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        self.policy = tuple(part.strip() for part in self.params["policy"].split(",") if part.strip())
        unknown = [name for name in self.policy if name not in OPERATIONS]
        if unknown or not self.policy:
            raise ValueError(f"unknown policy '{unknown[0] if unknown else ''}' (policies: {', '.join(OPERATIONS)})")

    def augment(self, images: torch.Tensor, state: TrainState) -> torch.Tensor:
        """Apply the policy's operations in order."""
        for name in self.policy:
            images = OPERATIONS[name](images, state)
        return images


@hookimpl
def tganbench_register_augmentations(register) -> None:
    """Register ``diffaugment``."""
    register(DiffAugment)
