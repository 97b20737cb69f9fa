"""``finetune``: TransferGAN (Wang et al., ECCV 2018), start from the source, train everything.

TransferGAN fine-tuned G and D with Adam at learning rate 1e-5 (``G_LR`` and
``D_LR`` in the authors' ``transfer_gan.py``). The default here keeps the run's
learning rate, so that ``finetune`` trains exactly like every other adversarial
strategy; ``finetune[lr=1e-5]`` sets TransferGAN's rate for both G and D.
"""

from tganbench.hookspecs import hookimpl
from tganbench.strategy import Strategy


class Finetune(Strategy):
    """Source checkpoint; every parameter trains, at the run's learning rate unless ``lr`` is set."""

    name = "finetune"
    description = "from source, all of G and D train (TransferGAN)"
    # 0 means "the run's learning rate": a parameter's type comes from its default, so None could not be typed.
    parameters = {"lr": 0.0}

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        if self.params["lr"] < 0:
            raise ValueError(f"lr must be positive, or 0 for the run's learning rate, got {self.params['lr']}")

    def optimizer(self) -> dict[str, float]:
        """``lr`` for both G and D when it is set (non-zero), else nothing: the run's settings."""
        return {"lr": self.params["lr"]} if self.params["lr"] else {}


@hookimpl
def tganbench_register_strategies(register) -> None:
    """Register ``finetune``."""
    register(Finetune)
