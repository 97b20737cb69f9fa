"""The embedded pairs' domain feature extractor, registered with torch-fidelity as ``tganbench-shapes``.

A small CNN trained (by ``python -m tganbench.metrics.train_shapes_extractor``)
to name the shape family of a procedural image and to predict its colours,
position and size. Its 128-d penultimate layer is the feature space of FD and
KID on the embedded pairs; distances there are reported as FD, never FID.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torch_fidelity
from torch import nn
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from tganbench.data.shapes import SHAPES

FIDELITY_NAME = "tganbench-shapes"
WEIGHTS_PATH = Path(__file__).with_name("shapes_extractor.pt")
INPUT_SIZE = 32
FEATURE_DIM = 128
N_REGRESSION = 9


class ShapesNet(nn.Module):
    """Four strided convolutions, a 128-d feature layer, a class head and a regression head."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),   # 16x16
            nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),   # 8x8
            nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(),   # 4x4
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, FEATURE_DIM),
        )
        self.classify = nn.Linear(FEATURE_DIM, len(SHAPES))
        self.regress = nn.Linear(FEATURE_DIM, N_REGRESSION)
        # Set after training so features are standardised on the training images:
        # FD and KID then come out in a readable range (KID of the order of Inception's).
        self.register_buffer("feature_mean", torch.zeros(FEATURE_DIM))
        self.register_buffer("feature_std", torch.ones(FEATURE_DIM))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 (N, 3, H, W) of any size -> features, class logits and regressed parameters."""
        x = images.float() / 127.5 - 1
        if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
        raw = self.body(x)
        hidden = F.relu(raw)
        features = (raw - self.feature_mean) / self.feature_std
        return {"features": features, "logits": self.classify(hidden), "parameters": self.regress(hidden)}


class ShapesFeatureExtractor(torch_fidelity.FeatureExtractorBase):
    """torch-fidelity adapter around ``ShapesNet`` with the committed weights."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None, **kwargs) -> None:
        super().__init__(name, features_list)
        self.net = ShapesNet()
        path = feature_extractor_weights_path or WEIGHTS_PATH
        self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        """Feature names this extractor can return."""
        return ("features", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        """FD and KID both use the 128-d feature layer."""
        return "features"

    @staticmethod
    def can_be_compiled() -> bool:
        """Compilation would cost more than this network's whole evaluation."""
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        """A uint8 batch of the expected shape."""
        return torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the requested features, in ``features_list`` order."""
        out = self.net(images)
        return tuple(out[name] for name in self.features_list)


if FIDELITY_NAME not in FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(FIDELITY_NAME, ShapesFeatureExtractor)
