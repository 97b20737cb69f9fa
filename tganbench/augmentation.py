"""The augmentation contract: a transformation of every image the discriminator sees.

An augmentation is a small class registered through
``tganbench_register_augmentations``. ``state.discriminate`` calls its
``augment`` on real and generated images, in the discriminator's step and in
the generator's, so D never sees an un-augmented image and G is not taught to
draw augmented ones (DiffAugment, ADA). ``--augment NAME[k=v]`` crosses it with
every adversarial strategy of the run; the cell's label is
``STRATEGY+AUGMENTATION`` (``finetune+diffaugment[policy=color]``).

Two optional methods let an augmentation adapt to training and show how
(ADA's probability ``p``): the adversarial step passes D's logits for the real
batch of every discriminator step to ``observe_real_logits``, and every
``evals.csv`` row of the cell gets the columns ``evaluation_values`` returns.
Both do nothing by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tganbench.parameters import Component, parse_component, split_top_level

if TYPE_CHECKING:
    import torch

    from tganbench.step import TrainState

NONE = "none"


class Augmentation(Component):
    """Base class of every augmentation; subclass it, set ``name``/``description``/``parameters``, register it."""

    def augment(self, images: "torch.Tensor", state: TrainState) -> "torch.Tensor":
        """Return ``images`` (a float batch in [-1, 1]) transformed; differentiable.

        Draw every random number through ``state.rand`` / ``randn`` / ``randint``
        so that a step with the augmentation can be captured (``--cuda-graph``).
        """
        raise NotImplementedError

    def observe_real_logits(self, logits: "torch.Tensor", state: TrainState) -> None:
        """Called by the adversarial step with D's (detached) logits for the augmented real batch of each D step.

        Does nothing by default. Keep it to tensor work on the device (no
        ``.item()``, no Python decision on a tensor's value) so that the step
        can still be captured. A strategy with its own adversarial ``step``
        should call it too (``state.augmentation.observe_real_logits(...)``
        when ``state.augmentation`` is set).
        """

    def evaluation_values(self) -> dict[str, float]:
        """Columns added to every ``evals.csv`` row of the cell (name -> value), read at each evaluation.

        Empty by default. Evaluation runs between steps, so reading a device
        tensor here (``float(tensor)``) costs no capture.
        """
        return {}


def parse_augmentations(text: str, available: dict[str, type[Augmentation]]) -> list[Augmentation | None]:
    """``--augment``: comma-separated ``NAME[k=v]`` items, ``none`` meaning no augmentation.

    For compatibility, a list of DiffAugment policies (``color,translation,cutout``,
    the option's meaning before augmentations were plugins) means
    ``diffaugment[policy=color,translation,cutout]``.
    """
    items = [item for item in split_top_level(text) if item]
    if not items:
        return [None]
    policies = getattr(available.get("diffaugment"), "POLICIES", ())
    if policies and all(item in policies for item in items):
        items = [f"diffaugment[policy={','.join(items)}]"]
    chosen: dict[str, Augmentation | None] = {}
    for item in items:
        augmentation = None if item == NONE else parse_component(item, available, "augmentation")
        chosen.setdefault(augmentation.label if augmentation else NONE, augmentation)
    return list(chosen.values())


def cell_label(strategy_label: str, augmentation: Augmentation | None) -> str:
    """The label that names a cell's method everywhere: ``freeze-d`` or ``freeze-d+diffaugment[policy=color]``."""
    return strategy_label if augmentation is None else f"{strategy_label}+{augmentation.label}"
