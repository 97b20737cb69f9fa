"""The whole plugin contract of tganbench: every hook a plugin may implement.

A plugin is a module (or object) with functions named like the hooks below and
decorated with ``@tganbench.hookimpl``. Registration hooks receive a ``register``
callback so that the core keeps control of names and clashes; they are called
once while plugins load and should do nothing but call ``register``. Observer
hooks are told about a run as it goes and cannot change it; one that raises is
reported as a warning and the run goes on (``tganbench.plugins.notify``).

Hooks are called through pluggy, so ``@hookimpl(tryfirst=True)``,
``trylast=True`` and ``wrapper=True`` mean what pluggy's documentation says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    from tganbench import Architecture, Augmentation, Metric, Strategy
    from tganbench.checkpoints import CheckpointFormat
    from tganbench.data.pairs import Pair
    from tganbench.metrics.extractors import ExtractorSpec

hookspec = pluggy.HookspecMarker("tganbench")
hookimpl = pluggy.HookimplMarker("tganbench")


@hookspec
def tganbench_register_strategies(register: Callable[[type[Strategy]], None]) -> None:
    """Called once while plugins load; call ``register(StrategyClass)`` for each strategy.

    :param register: takes a subclass of ``tganbench.Strategy`` with a unique ``name``.

    The return value is ignored.
    """


@hookspec
def tganbench_register_pairs(register: Callable[[Pair], None]) -> None:
    """Called once while plugins load; call ``register(pair)`` for each source/target pair.

    :param register: takes a ``tganbench.Pair`` instance with a unique ``name``; its
        ``load(resolution, data_root)`` runs only when a run selects it.

    The return value is ignored.
    """


@hookspec
def tganbench_register_feature_extractors(register: Callable[[ExtractorSpec], None]) -> None:
    """Called once while plugins load; call ``register(spec)`` for each feature extractor.

    :param register: takes a ``tganbench.ExtractorSpec``: a name for
        ``--feature-extractor`` and how to build it through torch-fidelity.

    The return value is ignored.
    """


@hookspec
def tganbench_register_architectures(register: Callable[[type[Architecture]], None]) -> None:
    """Called once while plugins load; call ``register(ArchitectureClass)`` for each G/D architecture.

    :param register: takes a ``tganbench.Architecture`` subclass with a unique ``name``, a
        ``description``, ``parameters`` (defaults, overridable as
        ``--architecture NAME[k=v]``) and ``build(resolution, z_dim)`` returning
        ``(generator, discriminator)`` that follow the model contract (``tganbench/models/base.py``).

    The return value is ignored.
    """


@hookspec
def tganbench_register_metrics(register: Callable[[Metric], None]) -> None:
    """Called once while plugins load; call ``register(metric)`` for each metric.

    :param register: takes a ``tganbench.Metric`` with a unique ``name``, a
        ``direction`` ("lower" or "higher" is better), whether it runs at every
        evaluation or only the final one, and ``compute(evaluation)`` returning
        its columns' values.

    The return value is ignored.
    """


@hookspec
def tganbench_register_augmentations(register: Callable[[type[Augmentation]], None]) -> None:
    """Called once while plugins load; call ``register(AugmentationClass)`` for each augmentation.

    :param register: takes a ``tganbench.Augmentation`` class with a unique ``name``;
        its ``augment(images, state)`` is applied to every image D sees, real and
        fake, when a run selects it with ``--augment NAME[k=v]``; its optional
        ``observe_real_logits`` and ``evaluation_values`` see D's real logits
        and add columns to ``evals.csv`` (ADA's ``p``).

    The return value is ignored.
    """


@hookspec
def tganbench_register_checkpoint_formats(register: Callable[[CheckpointFormat], None]) -> None:
    """Called once while plugins load; call ``register(checkpoint_format)`` for each source-checkpoint file format.

    :param register: takes a ``tganbench.CheckpointFormat`` instance with a unique
        ``name``, a ``description``, ``recognises(path)`` (whether a file is in the
        format) and ``load(path, model)`` returning G's and D's state dicts and a
        dictionary describing the file. ``--source-checkpoint PATH`` uses the first
        registered format that recognises the file; tganbench then checks that the
        weights fit the run's models.

    The return value is ignored.
    """


@hookspec
def tganbench_evaluated(row: dict[str, Any]) -> None:
    """Called as soon as an evaluation of a cell is scored, while the cell is still training.

    Always in the driver process: when the cell ran in a worker (``--executor
    local:N``), once per evaluation as the cell's result arrives, before
    ``tganbench_cell_finished``.

    :param row: the evaluation's ``evals.csv`` row (pair, shots, strategy, seed,
        step, train_seconds and the metrics); it reaches ``evals.csv`` when the cell finishes.

    Observers (loggers, dashboards) use it; the return value is ignored.
    """


@hookspec
def tganbench_cell_finished(row: dict[str, Any]) -> None:
    """Called when a cell (pair, shots, strategy, params, seed) ends, ok, diverged or failed.

    :param row: the row written to ``cells.csv``.

    The return value is ignored.
    """


@hookspec
def tganbench_run_finished(out_dir: str, cells: list[dict[str, Any]]) -> None:
    """Called once at the end of ``tganbench run``, after the report is written.

    :param out_dir: the results folder.
    :param cells: every row of ``cells.csv``, kept and new.

    The return value is ignored.
    """
