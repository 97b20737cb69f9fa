"""``freeze-g``: FreezeG-style transfer, freeze the lowest (coarsest) generator stages."""

from torch import nn

from tganbench.hookspecs import hookimpl
from tganbench.strategy import Strategy, stages


class FreezeG(Strategy):
    """Source checkpoint; the ``layers`` G stages nearest z stay fixed, BatchNorm statistics included."""

    name = "freeze-g"
    description = "from source, the lowest `layers` G stages (nearest z) frozen (FreezeG-style)"
    parameters = {"layers": 1}

    def frozen(self, g: nn.Module, d: nn.Module) -> list[nn.Module]:
        """The lowest ``layers`` stages of G."""
        return stages(g, self.params["layers"])


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``freeze-g``."""
    register(FreezeG)
