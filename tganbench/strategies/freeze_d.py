"""``freeze-d``: FreezeD (Mo et al., 2020), freeze the lowest discriminator stages."""

from torch import nn

from tganbench.hookspecs import hookimpl
from tganbench.strategy import Strategy, stages


class FreezeD(Strategy):
    """Source checkpoint; the ``layers`` D stages nearest the image stay fixed."""

    name = "freeze-d"
    description = "from source, the lowest `layers` D stages (nearest the image) frozen (FreezeD)"
    parameters = {"layers": 2}

    def frozen(self, g: nn.Module, d: nn.Module) -> list[nn.Module]:
        """The lowest ``layers`` stages of D."""
        return stages(d, self.params["layers"])


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``freeze-d``."""
    register(FreezeD)
