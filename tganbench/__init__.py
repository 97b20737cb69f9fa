"""tganbench: compare GAN transfer-learning strategies on identical source/target pairs."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tganbench.hookspecs import hookimpl
from tganbench.strategy import Strategy

if TYPE_CHECKING:
    from tganbench.data.pairs import Pair, PairData
    from tganbench.metrics.extractors import ExtractorSpec
    from tganbench.train import TrainState

__version__ = "0.1.0"

# The rest of the plugin API, imported on first use: `import tganbench` stays as light as the strategy contract.
_LAZY = {
    "Pair": "tganbench.data.pairs",
    "PairData": "tganbench.data.pairs",
    "ExtractorSpec": "tganbench.metrics.extractors",
    "TrainState": "tganbench.train",
}

__all__ = ["ExtractorSpec", "Pair", "PairData", "Strategy", "TrainState", "hookimpl", "__version__"]


def __getattr__(name: str) -> Any:
    """``tganbench.Pair`` and the other names in ``_LAZY``, imported when first asked for."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tganbench' has no attribute {name!r}")
