"""Built-in feature extractors, registered through the same hook a plugin uses."""

from __future__ import annotations

from dataclasses import dataclass

from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

from tganbench.hookspecs import hookimpl


@dataclass(frozen=True)
class ExtractorSpec:
    """How ``--feature-extractor NAME`` maps onto a torch-fidelity feature extractor.

    ``metric`` is the column prefix: "FID" only for the standard Inception network,
    "FD" for every other feature space.
    """

    name: str
    fidelity_name: str
    feature_layer: str
    metric: str
    description: str
    module: str = ""  # imported before use, so a plugin's torch-fidelity registration runs
    weights_url: str = ""  # where torch-fidelity downloads the weights from, if it does


@hookimpl
def tganbench_register_feature_extractors(register) -> None:
    """Register the embedded pairs' shapes network and torch-fidelity's Inception."""
    register(
        ExtractorSpec(
            name="shapes",
            fidelity_name="tganbench-shapes",
            feature_layer="features",
            metric="FD",
            description="small CNN trained on the procedural shapes (weights in the package, offline)",
            module="tganbench.metrics.shapes_extractor",
        )
    )
    register(
        ExtractorSpec(
            name="inception",
            fidelity_name="inception-v3-compat",
            feature_layer="2048",
            metric="FID",
            description="torch-fidelity's standard Inception-v3 (weights downloaded on first use)",
            weights_url=URL_INCEPTION_V3,
        )
    )
