"""``finetune``: TransferGAN (Wang et al., ECCV 2018), start from the source, train everything."""

from tganbench.hookspecs import hookimpl
from tganbench.strategy import Strategy


class Finetune(Strategy):
    """Source checkpoint; every parameter trains."""

    name = "finetune"
    description = "from source, all of G and D train (TransferGAN)"


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``finetune``."""
    register(Finetune)
