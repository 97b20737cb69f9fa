"""The embedded pair's feature extractor: offline, registered with torch-fidelity, separates the domains."""

from __future__ import annotations

import torch
import torch_fidelity
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from tganbench.data.embedded import ShapesPair
from tganbench.metrics.evaluator import Evaluator
from tganbench.plugins import load_plugins


def _evaluator(reference: torch.Tensor) -> Evaluator:
    spec = load_plugins().extractors["shapes"].obj
    return Evaluator(spec, reference, torch.device("cpu"), kid_subsets=20, kid_subset_size=300)


def test_extractor_is_registered_with_torch_fidelity():
    _evaluator(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert issubclass(FEATURE_EXTRACTORS_REGISTRY["tganbench-shapes"], torch_fidelity.FeatureExtractorBase)


def test_fd_separates_source_from_target():
    data = ShapesPair("shapes", "disk", "triangle").load(32)
    evaluator = _evaluator(data.reference[:1000])
    same_domain = evaluator.score(data.target_pool[:1000])
    other_domain = evaluator.score(data.source[:1000])
    assert other_domain["fd"] > 8 * same_domain["fd"]
    assert other_domain["kid_mean"] > 10 * abs(same_domain["kid_mean"])


def test_fd_punishes_a_collapsed_generator():
    """100 distinct images repeated tenfold (mode collapse onto the shots) score worse than 1000 distinct."""
    data = ShapesPair("shapes", "disk", "triangle").load(32)
    evaluator = _evaluator(data.reference[:1000])
    diverse = evaluator.score(data.target_pool[:1000])["fd"]
    collapsed = evaluator.score(data.target_pool[:100].repeat(10, 1, 1, 1))["fd"]
    assert collapsed > diverse


def test_extractor_accepts_other_resolutions():
    data16 = ShapesPair("shapes", "disk", "square", n_source=300, n_target_pool=300, n_reference=300).load(16)
    evaluator = _evaluator(data16.reference)
    assert evaluator.score(data16.source)["fd"] > evaluator.score(data16.target_pool)["fd"]
