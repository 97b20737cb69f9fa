"""tganbench: compare GAN transfer-learning strategies on identical source/target pairs."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tganbench.hookspecs import hookimpl
from tganbench.strategy import Strategy

if TYPE_CHECKING:
    from tganbench.augmentation import Augmentation
    from tganbench.checkpoints import CheckpointFormat
    from tganbench.data.pairs import Pair, PairData
    from tganbench.metric import Evaluation, Metric, MetricContext
    from tganbench.metrics.extractors import ExtractorSpec
    from tganbench.models.base import Architecture
    from tganbench.step import TrainState

__version__ = "0.1.0"

# The rest of the plugin API, imported on first use: `import tganbench` stays as light as the strategy contract.
_LAZY = {
    "Pair": "tganbench.data.pairs",
    "PairData": "tganbench.data.pairs",
    "ExtractorSpec": "tganbench.metrics.extractors",
    "TrainState": "tganbench.step",
    "Architecture": "tganbench.models.base",
    "Augmentation": "tganbench.augmentation",
    "CheckpointFormat": "tganbench.checkpoints",
    "Metric": "tganbench.metric",
    "Evaluation": "tganbench.metric",
    "MetricContext": "tganbench.metric",
}

__all__ = ["Architecture", "Augmentation", "CheckpointFormat", "Evaluation", "ExtractorSpec", "Metric", "MetricContext", "Pair",
           "PairData", "Strategy", "TrainState", "hookimpl", "__version__"]


def __getattr__(name: str) -> Any:
    """``tganbench.Pair`` and the other names in ``_LAZY``, imported when first asked for."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tganbench' has no attribute {name!r}")
