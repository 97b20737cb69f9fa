"""The ``local:N`` executor: N worker processes on this machine.

Workers are started with ``spawn`` (a fresh interpreter: no forked torch
state, and the same behaviour on every platform). Each loads the run's
shared artefacts once, from the cache the driver filled, and runs one cell at
a time with a fixed number of torch threads: the driver's thread count divided
by N (at least one), which the driver also takes for itself so that the
device's name in the protocol says what the cells ran with. On a machine with
GPUs the workers take the devices in turn (worker i uses GPU i mod the GPU
count), so several workers may share one.

The driver hands out cells one at a time and watches every worker: a worker
that dies (killed, out of memory) fails the one cell it held, with its exit
code, and a fresh worker takes its place. A worker whose driver dies finishes
its cell (its result file is written) and exits.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator

import torch

from tganbench.cell import CellResult, CellSpec, SharedArtefacts, failed_result
from tganbench.executors import Executor, WorkerSetup


class WorkerLost(RuntimeError):
    """A cell whose worker process died or could not load the run; resuming the run executes it again."""


@dataclass
class _Worker:
    """One worker process as the driver sees it: the process, its end of the pipe, and the cell it holds."""

    process: Any
    connection: Connection
    cell: CellSpec | None = None


class LocalExecutor(Executor):
    """Runs cells on ``workers`` spawned processes."""

    in_process = False

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.label = f"local:{workers}"
        self.threads = max(1, torch.get_num_threads() // workers)

    def run(self, specs: list[CellSpec], setup: WorkerSetup, shared: SharedArtefacts,
            on_evaluated: Callable[[dict[str, Any]], None], quiet: bool) -> Iterator[CellResult]:
        """Hand the cells to the workers and yield results as they finish; Ctrl-C stops the workers."""
        context = multiprocessing.get_context("spawn")
        queue = deque(specs)
        started = 0

        def start() -> _Worker:
            nonlocal started
            driver_end, worker_end = context.Pipe()
            process = context.Process(target=_worker_main, args=(worker_end, setup, self.threads, started),
                                      daemon=True, name=f"tganbench-worker-{started}")
            process.start()
            worker_end.close()
            started += 1
            return _Worker(process, driver_end)

        workers = [start() for _ in range(min(self.workers, len(specs)))]
        try:
            while True:
                for worker in workers:
                    if worker.cell is None and queue:
                        worker.cell = queue.popleft()
                        worker.connection.send(worker.cell)
                busy = [worker for worker in workers if worker.cell is not None]
                if not busy:
                    break
                ready = wait([worker.connection for worker in busy] + [worker.process.sentinel for worker in busy])
                for index, worker in enumerate(workers):
                    if worker.cell is None or not (worker.connection in ready or worker.process.sentinel in ready):
                        continue
                    try:
                        status, payload = worker.connection.recv()
                    except (EOFError, OSError):  # the process died: its cell fails, a fresh worker takes its place
                        worker.process.join()
                        error = WorkerLost(f"local worker process {worker.process.pid} died "
                                           f"(exit code {worker.process.exitcode}) during the cell")
                        result = failed_result(worker.cell, shared, error)
                        result.traceback = f"{error} (what the worker printed is on the driver's stderr)"
                        yield result
                        worker.connection.close()
                        workers[index] = start()
                        continue
                    spec, worker.cell = worker.cell, None
                    if status == "ok":
                        yield payload
                    else:
                        result = failed_result(spec, shared, WorkerLost(payload))
                        result.traceback = payload
                        yield result
        finally:
            for worker in workers:
                if worker.cell is not None:  # interrupted mid-cell: do not wait for it
                    worker.process.terminate()
                else:
                    try:
                        worker.connection.send(None)
                    except OSError:
                        pass
            for worker in workers:
                worker.process.join()
                worker.connection.close()


def _worker_main(connection: Connection, setup: WorkerSetup, threads: int, index: int) -> None:
    """A worker process: set its threads and GPU, load the run's shared artefacts, then run cells until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it stops the workers
    torch.set_num_threads(threads)
    if setup.config.device != "cpu" and torch.cuda.is_available():
        torch.cuda.set_device(index % torch.cuda.device_count())
    from tganbench.worker import load_shared, run_cell

    try:
        shared, problem = load_shared(setup), None
    except Exception as error:  # noqa: BLE001 - reported with every cell this worker is given
        shared, problem = None, " ".join(f"{type(error).__name__}: {error}".split())
    while True:
        try:
            spec = connection.recv()
        except EOFError:  # the driver is gone
            return
        if spec is None:
            return
        if shared is None:
            connection.send(("error", f"the worker could not load the run's shared artefacts: {problem}"))
            continue
        result = run_cell(spec, shared, setup.out_dir)
        result.samples = None  # the grid is in the results folder already
        try:
            connection.send(("ok", result))
        except (BrokenPipeError, OSError):  # the driver is gone; the result file is written
            return
