"""On-disk cache of reference-set features, keyed by everything that decides them."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

import torch

from tganbench.fingerprints import code_version, state_fingerprint, tensor_fingerprint
from tganbench.metrics.extractors import ExtractorSpec
from tganbench.store import atomic_write

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
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def cached_features(
    path: Path,
    key: str,
    rows: int,
    compute: Callable[[], torch.Tensor],
    log: Callable[[str], None],
) -> tuple[torch.Tensor, bool]:
    """Return the features stored at ``path`` if they match ``key`` and ``rows``, else compute and store them.

    Returns ``(features, reused)``. A file that cannot be read or does not match
    (truncated, corrupt, another key) is reported in one line and rebuilt.
    """
    if path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            features = saved["features"]
            if saved["key"] != key or features.ndim != 2 or len(features) != rows:
                raise ValueError("content does not match its key")
            if tensor_fingerprint(features) != saved["checksum"]:
                raise ValueError("checksum mismatch")
            return features, True
        except Exception as error:  # noqa: BLE001 - any unreadable cache file is rebuilt, never fatal
            log(f"reference features: cache file {path} is unreadable or corrupt ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:100]}); recomputing")
    features = compute()
    saved = {"key": key, "features": features, "checksum": tensor_fingerprint(features)}
    atomic_write(path, lambda temporary: torch.save(saved, temporary))
    return features, False
