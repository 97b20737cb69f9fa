"""The ``ray`` executor: one Ray task per cell, on an existing Ray cluster or a local one.

``--executor ray[cpus=C,gpus=G]:ADDRESS`` connects to the cluster at
``ADDRESS`` (``auto``: the one this machine belongs to); without an address
it starts a local Ray instance for the run. Each task reserves ``cpus`` CPUs
(default 1; also the torch threads its cell runs with) and ``gpus`` GPUs,
where a fraction shares a GPU among cells (``gpus=0.25``: four cells to a
GPU). A task loads the run's shared artefacts from the cache folder, which
every node must see, like the results folder.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Iterator

import ray

from tganbench.cell import CellResult, CellSpec, SharedArtefacts, failed_result
from tganbench.executors import Executor, WorkerSetup
from tganbench.executors.local import WorkerLost
from tganbench.store import result_file_of


class RayExecutor(Executor):
    """Submits every cell as one Ray task and yields results as tasks end."""

    in_process = False

    def __init__(self, options: dict[str, Any]) -> None:
        self.address = options.get("address")
        self.gpus = float(options.get("gpus", 0))
        self.threads = int(options.get("cpus", 1))
        self.label = "ray" + (f" ({self.address})" if self.address else " (local)")

    def run(self, specs: list[CellSpec], setup: WorkerSetup, shared: SharedArtefacts,
            on_evaluated: Callable[[dict[str, Any]], None], quiet: bool) -> Iterator[CellResult]:
        """Submit one task per cell, then yield each task's result as it ends; Ctrl-C cancels the rest."""
        if not specs:
            return
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        task = ray.remote(num_cpus=self.threads, num_gpus=self.gpus, max_retries=0)(_run_task)
        pending = {task.remote(setup, result_file_of(spec), pickle.dumps(spec), self.threads): spec for spec in specs}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for reference in done:
                    spec = pending.pop(reference)
                    try:
                        yield ray.get(reference)
                    except Exception as error:  # noqa: BLE001 - the engine's error becomes the failed cell's message
                        last = next((line for line in reversed(str(error).splitlines()) if line.strip()), "")
                        lost = WorkerLost(f"ray task failed ({type(error).__name__}: {last.strip()[:300]})")
                        result = failed_result(spec, shared, lost)
                        result.traceback = f"{lost}\n{error}"
                        yield result
        except BaseException:  # Ctrl-C, or the caller stopped early: cancel what has not finished
            for reference in pending:
                ray.cancel(reference, force=True)
            raise
        finally:
            if started:  # a Ray instance (or connection) this run opened ends with it
                ray.shutdown()


def _run_task(setup: WorkerSetup, result_file: str, spec: bytes, threads: int) -> CellResult:
    """One cell as a Ray task (:func:`tganbench.worker.run_pickled_cell`)."""
    from tganbench.worker import run_pickled_cell

    return run_pickled_cell(setup, result_file, spec, threads)
