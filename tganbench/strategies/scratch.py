"""``scratch``: the baseline of every transfer paper, train G and D from random weights."""

from tganbench.hookspecs import hookimpl
from tganbench.strategy import Strategy


class Scratch(Strategy):
    """Random initialisation with the cell's seed; every parameter trains."""

    name = "scratch"
    description = "random init, all of G and D train (baseline)"
    from_source = False


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``scratch``."""
    register(Scratch)
