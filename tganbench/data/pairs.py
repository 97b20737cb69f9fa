"""Source/target pairs and the deterministic K-shot split every strategy shares."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from tganbench.errors import UsageError


@dataclass(frozen=True)
class PairData:
    """The images of one pair at one resolution, as uint8 tensors (N, 3, H, W) on the CPU.

    ``target_pool`` is where training shots are drawn from; ``reference`` is the
    disjoint held-out target set used only for evaluation.
    """

    name: str
    source: torch.Tensor
    target_pool: torch.Tensor
    reference: torch.Tensor

    def fingerprint(self) -> str:
        """Content hash of all three image sets: two runs on "the same pair" share it."""
        digest = hashlib.sha256()
        for images in (self.source, self.target_pool, self.reference):
            digest.update(str(tuple(images.shape)).encode())
            digest.update(images.contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


class Pair:
    """A registered source/target pair. Subclasses set ``name``/``description`` and implement ``load``.

    ``origin`` says where the images come from and ``sizes`` gives (source, target
    pool, held out) image counts when they are known without loading; both are
    shown by ``tganbench list``. ``families`` names the shape families of a
    procedural pair, so runs report the share of samples recognised as each.
    ``symmetries`` lists the transformations its images' distribution is
    invariant to (``tganbench.augmentations.symmetries.SYMMETRIES``); ``--real-symmetries auto``
    applies them to the real images D sees.
    """

    name: str = ""
    description: str = ""
    origin: str = ""
    sizes: tuple[int, int, int] | None = None
    # (source family, target family) for pairs of procedural shapes: what the recognition network
    # (tganbench.metrics.recognition) should see in the source model's and the target's images.
    families: tuple[str, str] | None = None
    # Declare only what is true of the images: a mirror of a digit or a quarter turn of a face is not one of them.
    symmetries: tuple[str, ...] = ()

    def load(self, resolution: int, data_root: Path) -> PairData:
        """Return the pair's images at ``resolution`` (deterministic: same call, same bytes).

        ``data_root`` is where downloadable datasets live (``--data-root``); pairs
        that need no files ignore it.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class Shots:
    """The K training images for one seed, plus a hash so runs can be checked to use the same ones."""

    images: torch.Tensor
    indices: torch.Tensor
    fingerprint: str


def draw_shots(data: PairData, shots: int, seed: int) -> Shots:
    """Pick ``shots`` training images from the target pool, deterministically for ``seed``.

    The selection is a prefix of one seeded permutation, so for a given seed the
    10 shots are inside the 100 shots.
    """
    available = len(data.target_pool)
    if shots < 1:
        raise UsageError(f"--shots must be at least 1, got {shots}")
    if shots > available:
        raise UsageError(
            f"--shots {shots} is larger than the {available} target images available for training "
            f"in pair '{data.name}' ({len(data.reference)} more are held out for evaluation)"
        )
    order = torch.randperm(available, generator=torch.Generator().manual_seed(seed))
    indices = order[:shots].sort().values
    images = data.target_pool[indices]
    fingerprint = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]
    return Shots(images=images, indices=indices, fingerprint=fingerprint)
