"""``ada``: adaptive discriminator augmentation (Karras et al., NeurIPS 2020), a built-in augmentation plugin.

"Training Generative Adversarial Networks with Limited Data" (Karras, Aittala,
Hellsten, Laine, Lehtinen and Aila) augments every image the discriminator sees,
real and generated, in D's step and in G's, like DiffAugment, but applies each
transformation to each image only with a probability ``p`` and adapts ``p``
while training: as long as ``p`` stays below about 0.8 the augmentations do not
"leak" (G cannot lower its loss by drawing augmented images, because D can
still tell the un-augmented distribution apart), and ``p`` grows only as far as
D's overfitting requires.

**The overfitting heuristic.** After every ``interval`` discriminator steps,
``r_t`` is the mean of ``sign(D(real))`` over the (augmented) real images of
those steps: 0 when D is unsure, near 1 when it has memorised the reals. ``p``
moves by ``sign(r_t - target) * images / (kimg * 1000)``, where ``images`` is
the number of real images in the interval, so that ``p`` can go from 0 to 1
in ``kimg`` thousand images, and is kept in [0, 1]. The paper's defaults:
``target=0.6``, ``interval=4``, ``p=0`` at the start. ``kimg`` was 500 there
(100 when resuming from a pretrained network; runs of millions of images);
this project's runs show D 64,000 images (the quick profile: 2,000 steps of
32), so the default here is ``kimg=16``: ``p`` can go from 0 to 1 in 500
steps of 32, a quarter of a quick run, and moves by 0.008 per update, still
small enough to settle rather than jump (see docs/strategies.md, "Augmentations").

**The transformations** are the paper's "bgc" pipeline, three groups chosen by
``groups`` (default ``blit,geom,color``), each of whose operations is applied
to each image independently with probability ``p``:

- ``blit`` (pixel blitting): x-flip (mirror with probability 1/2), a quarter
  turn by 0, 90, 180 or 270 degrees, an integer translation of up to 1/8 of
  the image size along each axis;
- ``geom`` (general geometric): isotropic scaling by ``2**N(0, 0.2**2)``, a
  rotation by an angle uniform in [-180, 180] degrees, anisotropic scaling by
  ``2**N(0, 0.2**2)`` along x and its inverse along y, a fractional
  translation by ``N(0, 0.125**2)`` of the image size along each axis. The
  rotation is drawn twice, before and after the anisotropic scaling, each with
  probability ``1 - sqrt(1 - p)``, so that an image is rotated with
  probability ``p``;
- ``color``: brightness ``+N(0, 0.2**2)``, contrast ``*2**N(0, 0.5**2)``, luma
  flip (the colour reflected through the grey plane with probability 1/2),
  hue rotation about the grey axis by an angle uniform in [-180, 180]
  degrees, saturation ``*2**N(0, 1)`` away from the grey axis, composed as
  one 4x4 colour matrix (images in [-1, 1], 0 is mid-grey; hue and saturation
  apply to RGB images only).

The blitting and geometric operations are composed into one affine map per
image and the image is resampled once (bilinear, mirrored at the border);
only images with at least one operation drawn are resampled, so every image
with no operation drawn, and the whole batch when ``p`` is 0, leaves
bit-identical. Everything is plain torch (``affine_grid``/``grid_sample`` and
batched matrices), differentiable with respect to the images, second
derivatives included (R1). kornia was considered and not used: its random
augmentations draw from torch's global generator, and its functional colour
operations work in HSV space and clamp to [0, 1], which are not the paper's
linear RGB transformations.

**Capture.** ``p``, ``r_t`` and the interval's sums are 0-dimensional tensors on
the training device, and the update is tensor arithmetic with no host
synchronisation, so a step with ADA can be captured and replayed
(``--cuda-graph``). Every random number comes from the state's draws, the same
number of them every step.

**Seams.** The adversarial step hands D's logits for the real batch of each
discriminator step to :meth:`ADA.observe_real_logits`, and every evaluation
row of the cell gets :meth:`ADA.evaluation_values` (``ada_p``, ``ada_rt``);
both are optional methods of every :class:`~tganbench.augmentation.Augmentation`.
A strategy with its own adversarial step that never reports D's real logits
would leave ``p`` at its start forever; the first evaluation after a step
says so instead (the cell fails with that reason).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from tganbench.augmentation import Augmentation
from tganbench.hookspecs import hookimpl

if TYPE_CHECKING:
    from tganbench.step import TrainState

GROUPS = ("blit", "geom", "color")

# The strengths of the paper's pipeline (Karras et al., 2020, appendix B; the authors' AugmentPipe defaults).
XINT_MAX = 0.125  # integer translation: at most this share of the image size along each axis
SCALE_STD = 0.2  # isotropic scaling: standard deviation of log2 of the factor
ANISO_STD = 0.2  # anisotropic scaling: the same along x, its inverse along y
XFRAC_STD = 0.125  # fractional translation: standard deviation, as a share of the image size
BRIGHTNESS_STD = 0.2  # added to every channel (images in [-1, 1])
CONTRAST_STD = 0.5  # standard deviation of log2 of the contrast factor
SATURATION_STD = 1.0  # standard deviation of log2 of the saturation factor
# The arbitrary rotation and the hue rotation range over a full turn.


def _matrices(entries: list[list[torch.Tensor | float]], like: torch.Tensor) -> torch.Tensor:
    """A batch of matrices from rows of per-image tensors (shape ``like``) and numbers: shape (n, rows, columns)."""
    flat = [entry if isinstance(entry, torch.Tensor) else torch.full_like(like, entry) for row in entries for entry in row]
    return torch.stack(flat, dim=-1).reshape(*like.shape, len(entries), len(entries[0]))


def affine(a: torch.Tensor | float, b: torch.Tensor | float, c: torch.Tensor | float,
           d: torch.Tensor | float, e: torch.Tensor | float, f: torch.Tensor | float,
           like: torch.Tensor) -> torch.Tensor:
    """Homogeneous 2D maps ``[[a, b, c], [d, e, f], [0, 0, 1]]``, one per image (shape ``like`` plus 3x3)."""
    return _matrices([[a, b, c], [d, e, f], [0.0, 0.0, 1.0]], like)


def blit_and_geometry(images: torch.Tensor, state: TrainState, p: torch.Tensor, groups: tuple[str, ...]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw each image's geometric map; returns (maps from output to input pixel, whether any operation was drawn).

    Pixel coordinates have their origin at the image centre. Every distribution
    below is symmetric, so drawing a transformation's inverse (the map from
    output to input pixels, what resampling needs) draws the transformation.
    """
    n, _, height, width = images.shape
    device = images.device
    ones = torch.ones(n, device=device)
    zeros = torch.zeros(n, device=device)
    maps = torch.eye(3, device=device).expand(n, 3, 3)
    applied = torch.zeros(n, dtype=torch.bool, device=device)
    if "blit" in groups:
        gates = state.rand(n, 3) < p
        mirror = torch.where(gates[:, 0], 1 - 2 * state.randint(2, n).float(), ones)
        quarter = torch.where(gates[:, 1], state.randint(4, n).float(), zeros) * (math.pi / 2)
        cos, sin = torch.cos(quarter).round(), torch.sin(quarter).round()  # exact: 0, 1 or -1
        shift = (state.rand(n, 2) * 2 - 1) * XINT_MAX
        shift = torch.where(gates[:, 2:3], torch.stack([shift[:, 0] * width, shift[:, 1] * height], 1).round(), 0.0)
        maps = maps @ affine(mirror, 0.0, 0.0, 0.0, 1.0, 0.0, like=ones)
        maps = maps @ affine(cos, -sin, 0.0, sin, cos, 0.0, like=ones)
        maps = maps @ affine(1.0, 0.0, shift[:, 0], 0.0, 1.0, shift[:, 1], like=ones)
        applied |= gates.any(dim=1)
    if "geom" in groups:
        rotation_p = 1 - torch.sqrt((1 - p).clamp(0, 1))  # rotated before or after the anisotropic scaling: p
        gates = state.rand(n, 5) < torch.stack([p, rotation_p, p, rotation_p, p])
        normal = state.randn(n, 4)
        angles = (state.rand(n, 2) * 2 - 1) * math.pi
        scale = torch.where(gates[:, 0], torch.exp2(normal[:, 0] * SCALE_STD), ones)
        before = torch.where(gates[:, 1], angles[:, 0], zeros)
        aniso = torch.where(gates[:, 2], torch.exp2(normal[:, 1] * ANISO_STD), ones)
        after = torch.where(gates[:, 3], angles[:, 1], zeros)
        shift = normal[:, 2:] * XFRAC_STD
        shift = torch.where(gates[:, 4:5], torch.stack([shift[:, 0] * width, shift[:, 1] * height], 1), 0.0)
        maps = maps @ affine(scale, 0.0, 0.0, 0.0, scale, 0.0, like=ones)
        maps = maps @ affine(before.cos(), -before.sin(), 0.0, before.sin(), before.cos(), 0.0, like=ones)
        maps = maps @ affine(aniso, 0.0, 0.0, 0.0, 1 / aniso, 0.0, like=ones)
        maps = maps @ affine(after.cos(), -after.sin(), 0.0, after.sin(), after.cos(), 0.0, like=ones)
        maps = maps @ affine(1.0, 0.0, shift[:, 0], 0.0, 1.0, shift[:, 1], like=ones)
        applied |= gates.any(dim=1)
    return maps, applied


def resample(images: torch.Tensor, maps: torch.Tensor, applied: torch.Tensor) -> torch.Tensor:
    """Resample each image through its map (output pixel -> input pixel), bilinear, mirrored at the border.

    Images with ``applied`` False are returned unchanged, bit for bit.
    """
    n, _, height, width = images.shape
    # Centred pixel coordinates -> grid_sample's [-1, 1] (align_corners=False: pixel centres at (2i + 1) / size - 1).
    # Built with full_like, not torch.tensor: a host-to-device copy cannot be captured in a CUDA graph.
    like = maps[:, 0, 0]
    to_unit = affine(2 / width, 0.0, 0.0, 0.0, 2 / height, 0.0, like=like)
    to_pixels = affine(width / 2, 0.0, 0.0, 0.0, height / 2, 0.0, like=like)
    theta = (to_unit @ maps @ to_pixels)[:, :2, :]
    grid = F.affine_grid(theta, [n, images.shape[1], height, width], align_corners=False)
    moved = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return torch.where(applied.view(n, 1, 1, 1), moved.to(images.dtype), images)


class ColourConstants:
    """The fixed 4x4 matrices of the colour transformations, made once on the training device (at the first,
    eager, step: copying them from the host could not be captured in a CUDA graph).

    ``luma`` projects onto the grey axis ``(1, 1, 1) / sqrt(3)``; ``cross`` is
    the cross-product matrix of that axis (Rodrigues' rotation formula).
    """

    def __init__(self, device: torch.device) -> None:
        axis = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / math.sqrt(3)
        self.identity = torch.eye(4, device=device)
        self.luma = torch.outer(axis, axis)
        k = 1 / math.sqrt(3)
        self.cross = torch.tensor([[0, -k, k, 0], [k, 0, -k, 0], [-k, k, 0, 0], [0, 0, 0, 0]], device=device)
        self.translation = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0.0]], device=device)
        self.rgb_scale = torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], device=device))


def colour_matrices(images: torch.Tensor, state: TrainState, p: torch.Tensor, constants: ColourConstants
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw each image's 4x4 colour matrix (acting on ``(r, g, b, 1)``); returns it and whether any operation was drawn.

    Applied in the paper's order: brightness, contrast, luma flip, hue, saturation.
    Hue and saturation act only on RGB images (on grey ones they are the identity).
    """
    n, channels = images.shape[:2]
    c = constants
    gates = state.rand(n, 5) < p
    if channels != 3:
        gates = torch.cat([gates[:, :3], torch.zeros_like(gates[:, 3:])], dim=1)
    normal = state.randn(n, 3)
    flip = state.randint(2, n).float()
    hue = (state.rand(n) * 2 - 1) * math.pi
    brightness = torch.where(gates[:, 0], normal[:, 0] * BRIGHTNESS_STD, 0.0).view(n, 1, 1)
    contrast = torch.where(gates[:, 1], torch.exp2(normal[:, 1] * CONTRAST_STD), 1.0).view(n, 1, 1)
    flip = torch.where(gates[:, 2], flip, 0.0).view(n, 1, 1)
    hue = torch.where(gates[:, 3], hue, 0.0).view(n, 1, 1)
    saturation = torch.where(gates[:, 4], torch.exp2(normal[:, 2] * SATURATION_STD), 1.0).view(n, 1, 1)
    matrix = c.identity + brightness * c.translation
    matrix = (c.identity + (contrast - 1) * c.rgb_scale) @ matrix
    matrix = (c.identity - 2 * flip * c.luma) @ matrix  # Householder reflection through the grey plane
    rotation = c.identity + hue.sin() * c.cross + (1 - hue.cos()) * (c.luma - c.rgb_scale)  # about the grey axis
    matrix = rotation @ matrix
    matrix = (c.luma + saturation * (c.identity - c.luma)) @ matrix
    return matrix, gates.any(dim=1)


def recolour(images: torch.Tensor, matrix: torch.Tensor, applied: torch.Tensor) -> torch.Tensor:
    """Apply each image's colour matrix (RGB: the full matrix; one channel: its mean over the RGB rows).

    Images with ``applied`` False are returned unchanged, bit for bit.
    """
    n, channels = images.shape[:2]
    x = images.float()
    if channels == 3:
        out = torch.einsum("nij,njhw->nihw", matrix[:, :3, :3], x) + matrix[:, :3, 3].view(n, 3, 1, 1)
    elif channels == 1:
        grey = matrix[:, :3, :].mean(dim=1)  # (n, 4): the mean channel's response to a grey input
        out = x * grey[:, :3].sum(dim=1).view(n, 1, 1, 1) + grey[:, 3].view(n, 1, 1, 1)
    else:
        raise ValueError(f"ada: colour transformations need RGB or single-channel images, got {channels} channels")
    return torch.where(applied.view(n, 1, 1, 1), out.to(images.dtype), images)


class ADA(Augmentation):
    """Each blitting, geometric and colour transformation per image with probability p, adapted to D's overfitting."""

    name = "ada"
    description = "ADA (Karras et al., 2020): bgc augmentations with probability p, adapted toward r_t = target"
    parameters = {"target": 0.6, "interval": 4, "kimg": 16.0, "p": 0.0, "groups": "blit,geom,color"}

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        self.groups = tuple(part.strip() for part in self.params["groups"].split(",") if part.strip())
        unknown = [name for name in self.groups if name not in GROUPS]
        if unknown or not self.groups:
            raise ValueError(f"unknown group '{unknown[0] if unknown else ''}' (groups: {', '.join(GROUPS)})")
        if not 0 <= self.params["p"] <= 1:
            raise ValueError(f"p must be between 0 and 1, got {self.params['p']}")
        if not -1 < self.params["target"] < 1:
            raise ValueError(f"target must be between -1 and 1 (a mean of signs), got {self.params['target']}")
        if self.params["interval"] < 1 or not self.params["kimg"] > 0:
            raise ValueError("interval must be at least 1 and kimg above 0")
        # Made on the training device at the first call (see _start).
        self.p: torch.Tensor | None = None
        self.r_t: torch.Tensor | None = None
        self._sums: torch.Tensor | None = None  # signs, logits, images, batches since the last update
        self._colour: ColourConstants | None = None
        self._augmented = self._observed = False  # Python-side, for the one check in evaluation_values

    def _start(self, device: torch.device) -> None:
        if self.p is None:
            self.p = torch.full((), float(self.params["p"]), device=device)
            self.r_t = torch.full((), math.nan, device=device)
            self._sums = torch.zeros(4, device=device)
            self._colour = ColourConstants(device)

    def augment(self, images: torch.Tensor, state: TrainState) -> torch.Tensor:
        """Apply the chosen groups, each operation to each image with probability p."""
        self._start(images.device)
        self._augmented = True
        # In float32 even under --precision bf16: bf16 maps would shift whole-pixel translations off the grid.
        with torch.autocast(images.device.type, enabled=False):
            if "blit" in self.groups or "geom" in self.groups:
                images = resample(images, *blit_and_geometry(images, state, self.p, self.groups))
            if "color" in self.groups:
                images = recolour(images, *colour_matrices(images, state, self.p, self._colour))
        return images

    def observe_real_logits(self, logits: torch.Tensor, state: TrainState) -> None:
        """Add the real batch's signs to the interval's sums; at the end of an interval, move p (tensor work only)."""
        self._start(logits.device)
        self._observed = True
        signs = logits.detach().float().sign()
        batch = torch.stack([signs.sum(), torch.full_like(self.p, signs.numel()),
                             torch.full_like(self.p, logits.shape[0]), torch.ones_like(self.p)])
        self._sums.add_(batch)
        due = self._sums[3] >= self.params["interval"]
        r_t = self._sums[0] / self._sums[1].clamp(min=1)
        step = torch.sign(r_t - self.params["target"]) * self._sums[2] / (self.params["kimg"] * 1000)
        self.p.copy_(torch.where(due, (self.p + step).clamp(0, 1), self.p))
        self.r_t.copy_(torch.where(due, r_t, self.r_t))
        self._sums.mul_(torch.where(due, 0.0, 1.0))

    def evaluation_values(self) -> dict[str, float]:
        """``ada_p``: the probability now; ``ada_rt``: r_t of the last complete interval (NaN before the first)."""
        if self._augmented and not self._observed:
            raise RuntimeError("ada: the strategy's step never passed D's logits for the real images to "
                               "augmentation.observe_real_logits, so p cannot adapt (see docs/plugins.md)")
        if self.p is None:
            return {"ada_p": float(self.params["p"]), "ada_rt": math.nan}
        return {"ada_p": float(self.p), "ada_rt": float(self.r_t)}


@hookimpl
def tganbench_register_augmentations(register) -> None:
    """Register ``ada``."""
    register(ADA)
