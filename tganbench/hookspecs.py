"""The whole plugin contract of tganbench: every hook a plugin may implement.

A plugin is a module (or object) with functions named like the hooks below and
decorated with ``@tganbench.hookimpl``. Registration hooks receive a ``register``
callback so that the core keeps control of names and clashes.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("tganbench")
hookimpl = pluggy.HookimplMarker("tganbench")


@hookspec
def tganbench_register_strategies(register) -> None:
    """Called once while plugins load; call ``register(StrategyClass)`` for each strategy.

    ``StrategyClass`` is a subclass of ``tganbench.Strategy`` with a unique ``name``.
    The return value is ignored.
    """


@hookspec
def tganbench_register_pairs(register) -> None:
    """Called once while plugins load; call ``register(pair)`` for each source/target pair.

    ``pair`` is an instance of ``tganbench.data.pairs.Pair`` with a unique ``name``;
    its ``load(resolution, data_root)`` runs only when a run selects it.
    The return value is ignored.
    """


@hookspec
def tganbench_register_feature_extractors(register) -> None:
    """Called once while plugins load; call ``register(spec)`` for each feature extractor.

    ``spec`` is a ``tganbench.metrics.extractors.ExtractorSpec``: a name for
    ``--feature-extractor`` and how to build it through torch-fidelity.
    The return value is ignored.
    """


@hookspec
def tganbench_register_architectures(register) -> None:
    """Called once while plugins load; call ``register(ArchitectureClass)`` for each architecture.

    The return value is ignored.
    """


@hookspec
def tganbench_register_metrics(register) -> None:
    """Called once while plugins load; call ``register(metric)`` for each ``tganbench.Metric``.

    The return value is ignored.
    """


@hookspec
def tganbench_register_augmentations(register) -> None:
    """Called once while plugins load; call ``register(AugmentationClass)`` for each augmentation.

    The return value is ignored.
    """


@hookspec
def tganbench_evaluated(row: dict) -> None:
    """Called as soon as an evaluation of a cell is scored, with its ``evals.csv`` row.

    The row reaches ``evals.csv`` when the cell finishes.

    Observers (loggers, dashboards) use it; the return value is ignored.
    """


@hookspec
def tganbench_cell_finished(row: dict) -> None:
    """Called when a cell (pair, shots, strategy, params, seed) ends, ok or not.

    ``row`` is the row written to ``cells.csv``. The return value is ignored.
    """


@hookspec
def tganbench_run_finished(out_dir: str, cells: list) -> None:
    """Called once at the end of ``tganbench run`` with the results folder and all cell rows.

    The return value is ignored.
    """
