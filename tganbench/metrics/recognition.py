"""What the samples show: the share of images a degradation-robust classifier recognises as a shape family.

FD says how far two image sets are apart; it does not say whether a generator
draws triangles or coloured blobs. ``RecognitionNet`` answers that second
question for the embedded shapes pairs. It names the shape family of an image,
or ``none`` when the image shows no single shape (noise, a bare background, an
irregular smear). It was trained (by ``python -m
tganbench.metrics.train_recognition``) on renders degraded the way GAN samples
are degraded (blur, noise, lost contrast, resampling and checkerboard artefacts,
wobbly edges), so a blurred triangle still counts as a triangle.

It is a separate network from the FD feature extractor on purpose: FD should
keep penalising blur (a blurred triangle is a worse sample than a sharp one),
while recognition should not. Nothing trains against it: it only scores.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tganbench.data.shapes import SHAPES

CLASSES = SHAPES + ("none",)
WEIGHTS_PATH = Path(__file__).with_name("recognition.pt")
INPUT_SIZE = 32


class RecognitionNet(nn.Module):
    """A small VGG-style classifier: uint8 images (N, 3, H, W) -> logits over ``CLASSES``."""

    def __init__(self) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.body = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(128, len(CLASSES))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits for uint8 images of any square size (resized to 32x32, antialiased)."""
        x = images.float() / 127.5 - 1 if images.dtype == torch.uint8 else images
        if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
        return self.head(self.body(x))


@lru_cache(maxsize=4)
def load_recognizer(path: str = str(WEIGHTS_PATH)) -> RecognitionNet:
    """The committed recognition network in eval mode, loaded once per process (``weights_only``)."""
    net = RecognitionNet()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


@torch.no_grad()
def predict(images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted class index (into ``CLASSES``) of each uint8 image; runs on the CPU."""
    net = load_recognizer()
    images = images.cpu()
    return torch.cat([net(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])


def class_shares(images: torch.Tensor) -> dict[str, float]:
    """Share of ``images`` assigned to each class of ``CLASSES`` (the shares sum to 1)."""
    counts = torch.bincount(predict(images), minlength=len(CLASSES)).double() / max(len(images), 1)
    return {name: float(share) for name, share in zip(CLASSES, counts)}


def recognised(images: torch.Tensor, family: str) -> float:
    """Share of ``images`` (uint8) recognised as shape ``family`` (one of ``SHAPES``)."""
    if family not in SHAPES:
        raise ValueError(f"unknown shape family {family!r}; known: {', '.join(SHAPES)}")
    return class_shares(images)[family]


def recognition_scores(images: torch.Tensor, families: tuple[str, str]) -> dict[str, float]:
    """``recognised`` (share seen as the target family) and ``recognised_source`` (as the source family)."""
    source, target = families
    shares = class_shares(images)
    return {"recognised": shares[target], "recognised_source": shares[source]}
