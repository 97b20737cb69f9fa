"""tganbench: compare GAN transfer-learning strategies on identical source/target pairs."""

from tganbench.hookspecs import hookimpl
from tganbench.strategy import Strategy

__version__ = "0.1.0"

__all__ = ["Strategy", "hookimpl", "__version__"]
