"""The ``submitit`` executor: one Slurm job per cell, submitted as a job array with submitit.

``--executor submitit[partition=P,time=MIN,cpus=C,gpus=G,mem=GB,array=K,account=A]``
maps onto submitit's ``AutoExecutor`` parameters; ``--executor-setup LINE``
adds shell lines every job runs first. ``cluster=local`` runs the same jobs
as processes on this machine through submitit's local executor (what the
tests use; no Slurm needed). Job files and logs go to ``<results>/submitit/``.

Each job loads the run's shared artefacts from the cache folder (which every
node must see, like the results folder), runs its cell with ``cpus`` torch
threads and writes the cell's result file. A job is checkpointable: when
Slurm preempts it or its time runs out, submitit requeues it, and a requeued
job whose cell already finished returns the result file instead of training
again.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Iterator

import submitit

from tganbench.cell import CellResult, CellSpec, SharedArtefacts, failed_result
from tganbench.executors import Executor, WorkerSetup
from tganbench.executors.local import WorkerLost
from tganbench.store import result_file_of

# How often the driver asks whether jobs have finished, in seconds.
POLL_SECONDS = 1.0


class SubmititExecutor(Executor):
    """Submits every cell as one job of a submitit job array and yields results as jobs end."""

    in_process = False

    def __init__(self, options: dict[str, Any], setup_lines: tuple[str, ...] = ()) -> None:
        self.options = options
        self.setup_lines = setup_lines
        self.threads = int(options.get("cpus", 1))
        self.label = "submitit" + (f" ({options['cluster']})" if "cluster" in options else "")

    def parameters(self) -> dict[str, Any]:
        """submitit's ``update_parameters`` arguments for these options."""
        names = {"time": "timeout_min", "cpus": "cpus_per_task", "gpus": "gpus_per_node", "mem": "mem_gb",
                 "partition": "slurm_partition", "account": "slurm_account", "array": "slurm_array_parallelism"}
        parameters = {names[key]: value for key, value in self.options.items() if key in names}
        parameters.setdefault("timeout_min", 60)
        parameters.setdefault("cpus_per_task", self.threads)
        parameters.setdefault("gpus_per_node", 0)
        if self.setup_lines:
            parameters["slurm_setup"] = list(self.setup_lines)
        return {"name": "tganbench", "tasks_per_node": 1, "nodes": 1, **parameters}

    def run(self, specs: list[CellSpec], setup: WorkerSetup, shared: SharedArtefacts,
            on_evaluated: Callable[[dict[str, Any]], None], quiet: bool) -> Iterator[CellResult]:
        """Submit the cells as one job array, then yield each job's result as it ends; Ctrl-C cancels the jobs."""
        if not specs:
            return
        executor = submitit.AutoExecutor(folder=setup.out_dir / "submitit", cluster=self.options.get("cluster"))
        executor.update_parameters(**self.parameters())
        # Cells travel pickled, and are unpickled after the job has loaded the run's plugins (their classes).
        names = [result_file_of(spec) for spec in specs]
        jobs = executor.map_array(CellJob(), [setup] * len(specs), names, [pickle.dumps(spec) for spec in specs],
                                  [self.threads] * len(specs))
        cells = {job.job_id: spec for job, spec in zip(jobs, specs)}
        try:
            for job in submitit.helpers.as_completed(jobs, poll_frequency=POLL_SECONDS):
                try:
                    yield job.result()
                except Exception as error:  # noqa: BLE001 - the engine's error becomes the failed cell's message
                    last = next((line for line in reversed(str(error).splitlines()) if line.strip()), "")
                    lost = WorkerLost(f"submitit job {job.job_id} failed ({type(error).__name__}: {last.strip()[:300]})")
                    result = failed_result(cells[job.job_id], shared, lost)
                    result.traceback = f"{lost}\n{error}\n(job log: {job.paths.stderr})"
                    yield result
        except BaseException:  # Ctrl-C, or the caller stopped early: cancel what has not finished
            for job in jobs:
                if not job.done():
                    job.cancel(check=False)
            raise


class CellJob(submitit.helpers.Checkpointable):
    """One cell as a submitit job (:func:`tganbench.worker.run_pickled_cell`).

    ``Checkpointable`` makes submitit requeue the job (same arguments) on
    preemption or timeout; the requeued job returns the result file of a
    cell that finished before it was stopped.
    """

    def __call__(self, setup: WorkerSetup, result_file: str, spec: bytes, threads: int) -> CellResult:
        """Run the pickled cell ``spec`` (unless ``result_file`` holds it finished) with ``threads`` torch threads."""
        from tganbench.worker import run_pickled_cell

        return run_pickled_cell(setup, result_file, spec, threads)
