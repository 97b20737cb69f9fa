"""The ``serial`` executor: one cell after another, in the driver (the default)."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

from tganbench.cell import CellResult, CellSpec, SharedArtefacts
from tganbench.executors import Executor, WorkerSetup
from tganbench.worker import run_cell


class SerialExecutor(Executor):
    """Runs every cell in this process, with the torch threads it already has."""

    label = "serial"
    in_process = True

    def __init__(self) -> None:
        self.threads = torch.get_num_threads()

    def run(self, specs: list[CellSpec], setup: WorkerSetup, shared: SharedArtefacts,
            on_evaluated: Callable[[dict[str, Any]], None], quiet: bool) -> Iterator[CellResult]:
        """Execute ``specs`` in order with the driver's own shared artefacts."""
        for spec in specs:
            yield run_cell(spec, shared, setup.out_dir, on_evaluated, quiet)
