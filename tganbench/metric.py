"""The metric contract: what a metric is, and what it sees at an evaluation.

A metric is registered through ``tganbench_register_metrics`` (in the spirit of
stylegan2-ada's metric registry). At every evaluation of a cell (or only the
final one) the runner calls its ``compute`` with an :class:`Evaluation` and
writes the values it returns into ``evals.csv``; the final values go into
``cells.csv``. The run's manifest lists the metrics it recorded, and the
summary, ``compare``, the plots and ``report.html`` follow that list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:
    from tganbench.metrics.evaluator import Evaluator

DIRECTIONS = ("lower", "higher")
UNITS = ("number", "share")


@dataclass
class MetricContext:
    """What every evaluation of a run shares: the scorer, the held-out images and the pair's shape families."""

    evaluator: Evaluator
    reference: torch.Tensor  # uint8 held-out target images
    families: tuple[str, str] | None  # (source, target) shape families when samples can be recognised
    shots: torch.Tensor | None = None  # uint8 training images of the cell (None before a cell is chosen)
    _shot_features: torch.Tensor | None = field(default=None, repr=False)

    def shot_features(self) -> torch.Tensor:
        """The training shots' features in the run's extractor space (K, D), float64; computed once per cell."""
        if self.shots is None:
            raise ValueError("this evaluation has no training shots (the metric needs a cell's shots)")
        if self._shot_features is None:
            self._shot_features = self.evaluator.features(self.shots)
        return self._shot_features


@dataclass
class Evaluation:
    """One evaluation of one cell: the generated samples and what to score them against."""

    samples: torch.Tensor  # uint8 N x 3 x R x R, from the run's fixed evaluation noise
    step: int
    final: bool
    context: MetricContext
    _features: torch.Tensor | None = field(default=None, repr=False)

    def features(self) -> torch.Tensor:
        """The samples' features in the run's extractor space (N, D), float64; computed once per evaluation."""
        if self._features is None:
            self._features = self.context.evaluator.features(self.samples)
        return self._features


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: unique identifier (``fd``); ``--max-regression NAME=LIMIT`` uses it.
        title: how tables and plots name it (``FD``).
        description: one line for ``tganbench list metrics``.
        direction: ``"lower"`` or ``"higher"`` is better (of the headline value).
        every_evaluation: computed at every evaluation (curves) or only the final one.
        columns: ``evals.csv`` column -> the ``cells.csv`` column that holds its final
            value; the first is the headline (summary, compare, plots).
        compute: ``compute(evaluation) -> {evals column: value}``.
        threshold: ``compare``'s default limit for the headline (``"10%"``, ``"0.1"``),
            or None to report it without gating.
        unit: ``"number"``, or ``"share"`` (in [0, 1], shown as a percentage).
        best: also record the best value over evaluations and its step
            (``<name>_best``, ``<name>_best_step``); FD's best picks the best checkpoint.
        select_by: with ``best``, the evals column (one of ``columns``, scored on the
            validation images) whose best value chooses the step; ``<name>_best`` is then
            the headline (test) value at that step, and ``<name>_oracle_best`` the best
            headline value over the evaluations (oracle early stopping, kept under that name).
        applies: whether the metric applies to a run, given its context (None: always).
    """

    name: str
    title: str
    description: str
    direction: str
    every_evaluation: bool
    columns: dict[str, str]
    compute: Callable[[Evaluation], dict[str, float]]
    threshold: str | None = None
    unit: str = "number"
    best: bool = False
    applies: Callable[[MetricContext], bool] | None = None
    select_by: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric '{self.name}': direction must be lower or higher, got '{self.direction}'")
        if self.unit not in UNITS:
            raise ValueError(f"metric '{self.name}': unit must be number or share, got '{self.unit}'")
        if not self.columns:
            raise ValueError(f"metric '{self.name}': columns must name at least one column")
        if self.select_by is not None and (not self.best or self.select_by not in self.columns):
            raise ValueError(f"metric '{self.name}': select_by must be one of its columns, and needs best=True")

    @property
    def headline(self) -> str:
        """The ``cells.csv`` column of the headline value."""
        return next(iter(self.columns.values()))

    def record(self) -> dict[str, Any]:
        """What the manifest records about the metric (readers of a results folder follow it)."""
        return {"name": self.name, "title": self.title, "description": self.description,
                "direction": self.direction, "every_evaluation": self.every_evaluation,
                "columns": dict(self.columns), "best": self.best, "threshold": self.threshold, "unit": self.unit,
                "select_by": self.select_by}
