"""On-disk cache of reference-set features, keyed by everything that decides them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

import torch

from tganbench.cache import load_or_build
from tganbench.fingerprints import code_version, content_key, state_fingerprint, tensor_fingerprint
from tganbench.metrics.extractors import ExtractorSpec

# The files whose code decides what cached reference features contain.
_CODE_FILES = ("metrics/evaluator.py", "metrics/reference_cache.py")


def reference_key(reference: torch.Tensor, spec: ExtractorSpec, extractor: torch.nn.Module) -> str:
    """Key of (reference content and resolution, extractor, weights, feature layer, torch-fidelity and our code)."""
    try:
        fidelity = version("torch-fidelity")
    except PackageNotFoundError:  # pragma: no cover - it is a dependency
        fidelity = "unknown"
    material = {
        "reference": tensor_fingerprint(reference),
        "extractor": spec.name,
        "fidelity_name": spec.fidelity_name,
        "feature_layer": spec.feature_layer,
        "weights": state_fingerprint(extractor.state_dict()),
        "torch_fidelity": fidelity,
        "code": code_version(*_CODE_FILES),
    }
    return content_key(material)


def cached_features(
    path: Path,
    key: str,
    rows: int,
    compute: Callable[[], torch.Tensor],
    log: Callable[[str], None],
    allow_build: bool = True,
) -> tuple[torch.Tensor, bool]:
    """Return the features stored at ``path`` if they match ``key`` and ``rows``, else compute and store them.

    Returns ``(features, reused)``; a bad file is reported in one line and rebuilt (``tganbench.cache``),
    or, without ``allow_build``, raises ``tganbench.cache.MissingArtefact``.
    """

    def check(entry: dict) -> None:
        features = entry["features"]
        if features.ndim != 2 or len(features) != rows:
            raise ValueError("content does not match its key")

    entry, reused = load_or_build(
        path, key, lambda: {"features": compute()}, lambda entry: tensor_fingerprint(entry["features"]), log,
        "reference features", check, allow_build,
    )
    return entry["features"], reused
