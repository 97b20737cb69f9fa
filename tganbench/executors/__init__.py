"""Executors: where the cells of a run execute.

The runner builds the shared artefacts (source checkpoints, reference
features) once, then hands the cells to an executor, which executes each with
:func:`tganbench.worker.run_cell` wherever it runs them and yields the results
as they finish. Every cell writes its own result file into the results
folder; only the driver (the process that runs ``tganbench run``) folds them
into ``cells.csv`` and ``evals.csv``. An executor never knows what a cell
computes, and nothing about it enters the protocol except the number of
torch threads a cell runs with, which is part of the device's name.

- ``serial`` (the default): one cell after another, in the driver;
- ``local:N``: N worker processes on this machine, started with ``spawn``;
- ``submitit[k=v,...]``: one Slurm job per cell, as a job array (submitit);
- ``ray[k=v,...][:ADDRESS]``: one Ray task per cell, on a Ray cluster or a local one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from tganbench.cell import CellResult, CellSpec, SharedArtefacts
from tganbench.config import RunConfig, parse_executor
from tganbench.errors import UsageError


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process needs to load a run's shared artefacts by itself (picklable)."""

    config: RunConfig  # the run's config as given to ``tganbench.runner.run``
    cache_dir: Path  # where the driver cached the source checkpoints and reference features
    out_dir: Path  # the results folder: result files and grids go here
    source_seeds: tuple[int, ...]  # the source checkpoints the driver prepared (empty: no cell needs one)


class Executor(ABC):
    """Executes cells and yields their results as they finish."""

    label: str
    threads: int  # torch threads each cell runs with
    in_process: bool  # whether cells run in the driver (observer hooks then fire during a cell)

    @abstractmethod
    def run(self, specs: list[CellSpec], setup: WorkerSetup, shared: SharedArtefacts,
            on_evaluated: Callable[[dict[str, Any]], None], quiet: bool) -> Iterator[CellResult]:
        """Execute ``specs`` and yield one :class:`CellResult` per cell, in the order they finish.

        A cell that raises, or whose worker is lost, is yielded as a ``failed``
        result naming the error; ``on_evaluated(row)`` is called for each
        evaluation of cells that run in this process.
        """


def make_executor(config: RunConfig) -> Executor:
    """The executor ``config.executor`` names (a bad one, or a missing engine, is a UsageError)."""
    name, options = parse_executor(config.executor)
    if name == "local":
        from tganbench.executors.local import LocalExecutor

        return LocalExecutor(options["workers"])
    if name == "submitit":
        try:
            from tganbench.executors.slurm import SubmititExecutor
        except ImportError:
            raise UsageError("--executor submitit needs submitit: pip install -e \".[slurm]\"") from None
        return SubmititExecutor(options, config.executor_setup)
    if name == "ray":
        try:
            from tganbench.executors.ray_cluster import RayExecutor
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install -e \".[ray]\"") from None
        return RayExecutor(options)
    from tganbench.executors.serial import SerialExecutor

    return SerialExecutor()
