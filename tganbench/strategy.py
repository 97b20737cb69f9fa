"""The strategy contract: what a transfer strategy may change in the shared training loop.

A strategy is a small class. The loop asks it which modules stay frozen, lets it
prepare extra state, asks it for extra generator-loss terms, and calls its
``step`` (the adversarial step unless the strategy replaces it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from tganbench.errors import UsageError

if TYPE_CHECKING:
    import torch

    from tganbench.models import Discriminator, Generator
    from tganbench.train import TrainState


class Strategy:
    """Base class of every transfer strategy; subclass it and register the subclass.

    Class attributes:
        name: what users type (``--strategies NAME[k=v]``); unique across plugins.
        description: one line for ``tganbench list``.
        parameters: defaults of the parameters users may override; a value's type
            is the type a command-line value is converted to.
        from_source: start from the shared source checkpoint (True) or from a
            random initialisation with the cell's seed (False).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    parameters: ClassVar[dict[str, Any]] = {}
    from_source: ClassVar[bool] = True

    def __init__(self, **overrides: Any) -> None:
        unknown = sorted(set(overrides) - set(self.parameters))
        if unknown:
            known = ", ".join(sorted(self.parameters)) or "none"
            raise ValueError(f"unknown parameter '{unknown[0]}' (parameters: {known})")
        self.overrides = dict(overrides)
        self.params: dict[str, Any] = {**self.parameters, **overrides}

    def fresh_copy(self) -> Strategy:
        """A new instance with the same parameters (strategies may keep per-cell state)."""
        return type(self)(**self.overrides)

    @property
    def label(self) -> str:
        """The strategy as a user would type it, with only the non-default parameters."""
        changed = [f"{k}={v}" for k, v in self.params.items() if v != self.parameters[k]]
        return f"{self.name}[{','.join(changed)}]" if changed else self.name

    def frozen(self, g: Generator, d: Discriminator) -> list[nn.Module]:
        """Modules whose parameters and buffers must stay bit-identical during training.

        The loop turns off their gradients and keeps them in eval mode, so
        normalisation statistics do not move either.
        """
        return []

    def prepare(self, state: TrainState) -> None:
        """Called once after the optimizers exist and before the first step (e.g. add latents)."""

    def generator_loss(self, state: TrainState, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None:
        """An extra term added to the generator's adversarial loss, or None (e.g. EWC, CDC)."""
        return None

    def step(self, state: TrainState) -> dict[str, torch.Tensor]:
        """One training step; returns detached scalar losses. Default: the adversarial step.

        Draw random numbers through ``state.randn`` / ``state.randint`` and avoid
        host synchronisation, so the step can also be captured (``--cuda-graph``).
        """
        from tganbench.train import adversarial_step

        return adversarial_step(state, self)


def stages(module: nn.Module, count: int) -> list[nn.Module]:
    """The ``count`` lowest named stages of G or D, with a clear error if there are fewer."""
    available = list(module.stages)
    if not 0 <= count <= len(available):
        raise ValueError(f"layers must be between 0 and {len(available)}, got {count}")
    return available[:count]


SPEC_PATTERN = re.compile(r"^([A-Za-z0-9_.+-]+)(?:\[(.*)\])?$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets: ``a[x=1,y=2],b`` -> ``a[x=1,y=2]``, ``b``."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts]


def _convert(strategy: str, key: str, raw: str, default: Any) -> Any:
    """Convert a command-line value to the type of the parameter's default."""
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
        return type(default)(raw)
    except ValueError:
        raise UsageError(
            f"strategy '{strategy}': parameter '{key}' expects {type(default).__name__}, got '{raw}'"
        ) from None


def parse_strategies(text: str, available: dict[str, type[Strategy]]) -> list[Strategy]:
    """Parse ``--strategies``: ``all`` or ``name[k=v,...]`` items separated by commas.

    Returns one validated instance per distinct item; ``fresh_copy`` gives each
    cell its own. Every problem is a ``UsageError`` naming it.
    """
    chosen: list[Strategy] = []
    for item in _split_top_level(text):
        match = SPEC_PATTERN.match(item)
        if not match:
            raise UsageError(f"malformed strategy '{item}': expected NAME or NAME[key=value,...]")
        name, body = match.group(1), match.group(2)
        if name == "all" and body is None:
            chosen.extend(cls() for cls in available.values())
            continue
        if name not in available:
            raise UsageError(f"unknown strategy '{name}' (available: {', '.join(available)})")
        cls = available[name]
        overrides = {}
        for assignment in filter(None, (body or "").split(",")):
            key, sep, raw = (part.strip() for part in assignment.partition("="))
            if not sep or not key:
                raise UsageError(f"strategy '{name}': malformed parameter '{assignment}', expected key=value")
            if key not in cls.parameters:
                known = ", ".join(cls.parameters) or "none"
                raise UsageError(f"strategy '{name}': unknown parameter '{key}' (parameters: {known})")
            overrides[key] = _convert(name, key, raw, cls.parameters[key])
        try:
            chosen.append(cls(**overrides))
        except ValueError as error:
            raise UsageError(f"strategy '{name}': {error}") from None
    unique: dict[str, Strategy] = {}
    for strategy in chosen:
        unique.setdefault(strategy.label, strategy)
    return list(unique.values())
