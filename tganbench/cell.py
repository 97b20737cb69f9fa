"""One cell of a run: a picklable description, and the one function that executes it.

A cell is (pair, shots, method, seed, source seed), where a method is a
strategy with an optional augmentation and the source seed names the source
checkpoint it starts from (``NO_SOURCE`` for scratch). :class:`CellSpec` holds everything that decides what the
cell computes and pickles, so an executor can send it to another process or
machine; :class:`SharedArtefacts` holds what every cell of a run shares and is
built once (the source checkpoints, the evaluator, the metrics).
:func:`execute_cell` trains, evaluates and returns a :class:`CellResult`;
``tganbench run`` and ``tganbench check-plugin`` both use it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

import tganbench
from tganbench.augmentation import Augmentation, cell_label
from tganbench.config import RunConfig, TrainConfig
from tganbench.environment import device_name, peak_memory
from tganbench.metric import Evaluation, Metric, MetricContext
from tganbench.models import ModelSpec
from tganbench.source import SourceCheckpoint
from tganbench.step import sample_images
from tganbench.store import GRID_IMAGES, NO_SOURCE, cell_key
from tganbench.strategy import Strategy
from tganbench.train import train

# Evaluation noise is drawn from this offset of the cell seed, apart from the training RNG.
EVAL_NOISE_SEED_OFFSET = 1_000_003


@dataclass
class CellSpec:
    """Everything that decides what one cell computes (picklable)."""

    config: RunConfig  # resolved for the pair (``RunConfig.for_pair``)
    model: ModelSpec
    train: TrainConfig
    strategy: Strategy
    augmentation: Augmentation | None
    shots: int
    seed: int
    images: torch.Tensor  # the cell's training shots, uint8, on the CPU
    identity: dict[str, Any]  # pair name and fingerprints, for the row
    source_seed: int = NO_SOURCE  # the source checkpoint it starts from (NO_SOURCE: random weights)

    @property
    def label(self) -> str:
        """The cell's method label (``finetune+diffaugment[policy=color]``)."""
        return cell_label(self.strategy.label, self.augmentation)

    def key(self) -> tuple[int, str, int, int]:
        """What identifies the cell within one results folder: ``store.cell_key`` of its row."""
        return cell_key(self.row())

    def row(self) -> dict[str, Any]:
        """The columns of its ``cells.csv`` row that say which cell it is and which data it used."""
        return {
            "pair": self.identity["pair"],
            "pair_fingerprint": self.identity["pair_fingerprint"],
            "reference_fingerprint": self.identity["reference_fingerprint"],
            "shots": self.shots,
            "shots_fingerprint": self.identity["shots_fingerprint"],
            "strategy": self.label,
            "strategy_name": self.strategy.name,
            "params": json.dumps(self.strategy.params, sort_keys=True),
            "augmentation": self.augmentation.label if self.augmentation else "none",
            "seed": self.seed,
            "source_seed": self.source_seed,
        }


@dataclass
class SharedArtefacts:
    """What every cell of a run shares, built once before any cell runs."""

    device: torch.device
    context: MetricContext
    metrics: list[Metric]
    extractor_name: str
    extractor_metric: str  # how the extractor's FD is named ("FD[shapes]", "FID")
    sources: dict[int, SourceCheckpoint] = field(default_factory=dict)  # source seed -> checkpoint


@dataclass
class CellResult:
    """A finished cell: its ``cells.csv`` row, its ``evals.csv`` rows and its final sample grid (uint8)."""

    row: dict[str, Any]
    evals: list[dict[str, Any]] = field(default_factory=list)
    samples: torch.Tensor | None = None
    traceback: str | None = None  # a failed cell's traceback, for errors.log


def evaluation_noise(config: RunConfig, seed: int, device: torch.device, z_dim: int | None = None) -> torch.Tensor:
    """The fixed noise every strategy is evaluated on for ``seed`` (drawn on the CPU, so device-independent)."""
    generator = torch.Generator().manual_seed(seed + EVAL_NOISE_SEED_OFFSET)
    return torch.randn((config.n_generated, z_dim or config.z_dim), generator=generator).to(device)


def score(samples: torch.Tensor, step: int, final: bool, context: MetricContext, metrics: list[Metric]
          ) -> dict[str, float]:
    """Every metric's values for one evaluation; final-only metrics are NaN before the final one."""
    evaluation = Evaluation(samples, step, final, context)
    scores: dict[str, float] = {}
    for metric in metrics:
        if metric.every_evaluation or final:
            scores.update(metric.compute(evaluation))
        else:
            scores.update({column: math.nan for column in metric.columns})
    return scores


def metric_columns(metrics: list[Metric], evals: list[dict[str, Any]], ok: bool) -> dict[str, Any]:
    """A cell's metric columns: each metric's final values, and the best value and step where it keeps one.

    With ``select_by``, the step is the one where that (validation) column was
    best, the value the headline (test) value there, and the best test value
    over the evaluations is kept apart as ``<name>_oracle_best``. NaN values
    (a diverged evaluation) never win.
    """
    final = evals[-1] if ok and evals else None
    out: dict[str, Any] = {}
    for metric in metrics:
        for cells_column in metric.columns.values():
            out[cells_column] = math.nan
        if final:
            out.update({cells: final[column] for column, cells in metric.columns.items()})
        if not metric.best:
            continue
        headline = next(iter(metric.columns))
        chosen = _best_row(evals, metric.select_by or headline, metric.direction)
        out[f"{metric.name}_best"] = chosen[headline] if chosen else math.nan
        out[f"{metric.name}_best_step"] = chosen["step"] if chosen else -1
        if metric.select_by:
            oracle = _best_row(evals, headline, metric.direction)
            out[f"{metric.name}_oracle_best"] = oracle[headline] if oracle else math.nan
    return out


def _best_row(evals: list[dict[str, Any]], column: str, direction: str) -> dict[str, Any] | None:
    """The evaluation with the best finite ``column`` (the first of equals), or None."""
    finite = [row for row in evals if math.isfinite(row[column])]
    if not finite:
        return None
    return (min if direction == "lower" else max)(finite, key=lambda row: row[column])


def provenance(spec: CellSpec, shared: SharedArtefacts) -> dict[str, Any]:
    """The columns every row carries about where and how it was measured."""
    return {
        "device": device_name(shared.device),
        "metric": shared.extractor_metric,
        "extractor": shared.extractor_name,
        "n_generated": spec.config.n_generated,
        "n_reference": shared.context.evaluator.n_reference,
        "tganbench_version": tganbench.__version__,
        "torch_version": torch.__version__,
    }


def execute_cell(
    spec: CellSpec,
    shared: SharedArtefacts,
    on_evaluated: Callable[[dict[str, Any]], None] = lambda row: None,
    quiet: bool = False,
) -> CellResult:
    """Train the cell's method on its shots for its seed, evaluate it, and return its rows and samples.

    ``on_evaluated(row)`` is called as soon as each evaluation is scored.
    Exceptions propagate: the caller records the cell as failed.
    """
    config, device = spec.config, shared.device
    strategy = spec.strategy.fresh_copy()
    g, d = spec.model.build(spec.seed, device)
    source = shared.sources[spec.source_seed] if strategy.from_source else None
    if source is not None:
        g.load_state_dict(source.g)
        d.load_state_dict(source.d)
    noise = evaluation_noise(config, spec.seed, device, g.z_dim)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    row = spec.row()
    context = MetricContext(shared.context.evaluator, shared.context.reference, shared.context.families, spec.images)
    evals: list[dict[str, Any]] = []
    augmentation = spec.augmentation.fresh_copy() if spec.augmentation else None

    def evaluate(step: int, train_seconds: float, generator: torch.nn.Module) -> None:
        samples = sample_images(generator, noise)
        scores = score(samples, step, step == config.target_steps, context, shared.metrics)
        keys = {k: row[k] for k in ("pair", "shots", "strategy", "seed", "source_seed")}
        reported = augmentation.evaluation_values() if augmentation else {}  # ADA's p
        evals.append({**keys, "step": step, "train_seconds": train_seconds, **scores, **reported})
        on_evaluated(evals[-1])

    result = train(
        g, d, strategy, spec.images.to(device), spec.train, spec.seed,
        evaluate=evaluate, eval_every=config.eval_every,
        progress=f"{spec.label} {spec.shots} shots seed {spec.seed}", quiet=quiet,
        augmentation=augmentation,
        source_weights={"g": source.g, "d": source.d} if source is not None else None,
    )
    samples = sample_images(result.eval_generator, noise[:GRID_IMAGES])
    row.update(
        status=result.status,
        **metric_columns(shared.metrics, evals, result.status == "ok"),
        steps=result.steps,
        train_seconds=result.train_seconds,
        eval_seconds=result.eval_seconds,
        steps_per_second=result.steps / result.train_seconds if result.train_seconds else math.nan,
        trainable_params=result.trainable_params,
        total_params=result.total_params,
        optimizer=json.dumps(result.optimizer, sort_keys=True),
        **peak_memory(device),
        **provenance(spec, shared),
    )
    return CellResult(row, evals, samples)


def failed_result(spec: CellSpec, shared: SharedArtefacts, error: BaseException) -> CellResult:
    """The result of a cell whose strategy (or a plugin hook) raised: status ``failed`` and the error."""
    message = " ".join(f"{type(error).__name__}: {error}".split())
    if isinstance(error, torch.cuda.OutOfMemoryError):
        config = spec.config
        message = (f"out of GPU memory at batch size {config.batch_size}, resolution {config.resolution}, "
                   f"model {spec.model.architecture.label} ({message[:200]})")
    return CellResult({**spec.row(), "status": "failed", "error": message, **provenance(spec, shared)})
