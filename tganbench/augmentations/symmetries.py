"""Symmetries of the real images (``--real-symmetries``), a data option of the shared loop.

A random mirror (``xflip``) and a random quarter turn (``rot90``) of each *real*
image D sees, and nothing done to generated images: the data augmentation of
StyleGAN's ``--mirror``, extended to quarter turns. It shows D more distinct
real images than there are shots, but it is honest only when the target
distribution is itself invariant to the transformation, as the embedded pairs
are (uniform rotation, position and gradient direction, square image); on faces
or digits a quarter turn would teach G upside-down images. Applying the same
symmetries to generated images too, DiffAugment-style, makes D blind to
orientation: on the embedded pair G then drew every triangle pointing the same
way (see docs/recipe.md). That is why this is not an augmentation plugin
(those see real and generated images alike) but a property the pair declares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from tganbench.errors import UsageError

if TYPE_CHECKING:
    from tganbench.step import TrainState

SYMMETRIES = ("xflip", "rot90")


def parse_symmetries(text: str) -> tuple[str, ...]:
    """``"xflip,rot90"`` -> those symmetries; ``""`` or ``"none"`` -> none (``"auto"`` is resolved by the runner)."""
    if text.strip().lower() in ("", "none"):
        return ()
    names = tuple(part.strip() for part in text.split(","))
    unknown = [name for name in names if name not in SYMMETRIES]
    if unknown:
        raise UsageError(f"--real-symmetries: unknown symmetry '{unknown[0]}' "
                         f"(symmetries: {', '.join(SYMMETRIES)}, or none, or auto)")
    return names


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
