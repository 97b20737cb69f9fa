"""tganbench: compare GAN transfer-learning strategies on identical source/target pairs."""

from tganbench.augmentation import Augmentation
from tganbench.hookspecs import hookimpl
from tganbench.metric import Evaluation, Metric, MetricContext
from tganbench.models.base import Architecture
from tganbench.step import TrainState
from tganbench.strategy import Strategy

__version__ = "0.1.0"

__all__ = ["Architecture", "Augmentation", "Evaluation", "Metric", "MetricContext", "Strategy", "TrainState",
           "hookimpl", "__version__"]
