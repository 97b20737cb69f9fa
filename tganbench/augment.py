"""Augmentation of the discriminator's inputs: DiffAugment, and the symmetries of the real images.

**DiffAugment** (Zhao et al., NeurIPS 2020).

With a few hundred training images the discriminator memorises them within a
few hundred steps and its gradients stop telling the generator anything useful.
DiffAugment applies the same random, differentiable transformations to every
image the discriminator sees, real and generated, in the discriminator's step
and in the generator's, so the discriminator cannot memorise and the generator
is not taught to produce augmented images. tganbench implements the paper's
three policies from their description:

- ``color``: brightness shift in [-0.5, 0.5], saturation factor in [0, 2],
  contrast factor in [0.5, 1.5], one draw per image each;
- ``translation``: a shift of up to 1/8 of the image size along each axis,
  whole pixels, filling with zeros;
- ``cutout``: a zero square of half the image size at a random position
  (clipped at the border).

**Symmetries of the real images** (``--real-symmetries``): a random mirror
(``xflip``) and a random quarter turn (``rot90``) of each *real* image D sees,
and nothing done to generated images: the data augmentation of StyleGAN's
``--mirror``, extended to quarter turns. It shows D more distinct real images
than there are shots, but it is honest only when the target distribution is
itself invariant to the transformation, as the embedded pairs are (uniform
rotation, position and gradient direction, square image); on faces or digits a
quarter turn would teach G upside-down images. Applying the same symmetries to
generated images too, DiffAugment-style, makes D blind to orientation: on the
embedded pair G then drew every triangle pointing the same way (see
docs/recipe.md).

Every random number comes from the training state's draws, so a step with
augmentation can still be captured as a CUDA graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from tganbench.errors import UsageError

if TYPE_CHECKING:
    from tganbench.train import TrainState

POLICIES = ("color", "translation", "cutout")
SYMMETRIES = ("xflip", "rot90")


def _parse_names(text: str, known: tuple[str, ...], flag: str, kind: str, kinds: str, also: str) -> tuple[str, ...]:
    """A comma-separated list of ``known`` names in the given order; ``""`` or ``"none"`` -> ()."""
    if text.strip().lower() in ("", "none"):
        return ()
    names = tuple(part.strip() for part in text.split(","))
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(f"{flag}: unknown {kind} '{unknown[0]}' ({kinds}: {', '.join(known)}, {also})")
    return names


def parse_policy(text: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> the policies in that order; ``""`` or ``"none"`` -> no augmentation."""
    return _parse_names(text, POLICIES, "--augment", "policy", "policies", "or none")


def parse_symmetries(text: str) -> tuple[str, ...]:
    """``"xflip,rot90"`` -> those symmetries; ``""`` or ``"none"`` -> none (``"auto"`` is resolved by the runner)."""
    return _parse_names(text, SYMMETRIES, "--real-symmetries", "symmetry", "symmetries", "or none, or auto")


def xflip(x: torch.Tensor, state: TrainState) -> torch.Tensor:
    """Mirror each image left to right with probability 1/2."""
    flip = state.rand(x.shape[0], 1, 1, 1) < 0.5
    return torch.where(flip, x.flip(3), x)


def rot90(x: torch.Tensor, state: TrainState) -> torch.Tensor:
    """Turn each (square) image by 0, 90, 180 or 270 degrees, uniformly."""
    turns = state.randint(4, x.shape[0], 1, 1, 1)
    turned = x
    for k in (1, 2, 3):
        turned = torch.where(turns == k, torch.rot90(x, k, dims=(2, 3)), turned)
    return turned


def augment_reals(x: torch.Tensor, symmetries: tuple[str, ...], state: TrainState) -> torch.Tensor:
    """Apply ``symmetries`` (from :func:`parse_symmetries`) to a batch of real images; identity when empty."""
    for name in symmetries:
        x = {"xflip": xflip, "rot90": rot90}[name](x, state)
    return x


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


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], state: TrainState) -> torch.Tensor:
    """Apply ``policy`` (from :func:`parse_policy`) to a batch of images in [-1, 1]; identity when empty."""
    for name in policy:
        x = OPERATIONS[name](x, state)
    return x
