"""What executes one cell wherever an executor runs it: the cell itself, its grid and its result file.

:func:`run_cell` is the one function every executor calls for a cell;
:func:`run_pickled_cell` wraps it for a job on another machine (submitit, Ray).
:func:`load_shared` is how a worker process gets a run's shared artefacts: it
plans the run again from its config and *loads* the source checkpoints and
reference features the driver cached; it never trains or computes them, so a
worker that cannot find them fails its cells with a message saying so.
"""

from __future__ import annotations

import json
import pickle
import traceback
from typing import Any, Callable

import torch

from tganbench.cell import CellResult, CellSpec, SharedArtefacts, execute_cell, failed_result
from tganbench.executors import WorkerSetup
from tganbench.metrics.evaluator import Evaluator
from tganbench.plan import plan_run
from tganbench.plugins import load_plugins
from tganbench.runner import data_root_of, prepare_source, shared_artefacts
from tganbench.store import result_file_of, samples_grid, save_cell_result, save_grid


def run_cell(spec: CellSpec, shared: SharedArtefacts, out_dir: Any,
             on_evaluated: Callable[[dict[str, Any]], None] = lambda row: None, quiet: bool = True) -> CellResult:
    """Execute one cell, save its sample grid and its result file in ``out_dir``, and return the result.

    A cell that raises becomes a ``failed`` result carrying its traceback: one
    failing cell must not cost the others.
    """
    try:
        result = execute_cell(spec, shared, on_evaluated=on_evaluated, quiet=quiet)
        grid = samples_grid(spec.shots, spec.seed, spec.label,
                            spec.source_seed if spec.config.source_seeds > 1 else None)
        save_grid(out_dir / grid, result.samples)
        result.row["samples"] = grid
    except Exception as error:  # noqa: BLE001 - recorded as a failed cell
        if shared.device.type == "cuda":
            torch.cuda.empty_cache()
        result = failed_result(spec, shared, error)
        result.traceback = traceback.format_exc()
    save_cell_result(out_dir, result_file_of(spec), result.row, result.evals, result.traceback)
    return result


def load_shared(setup: WorkerSetup) -> SharedArtefacts:
    """The shared artefacts of the run ``setup`` describes, loaded in a worker process (never built)."""
    config = setup.config
    registry = load_plugins(list(config.plugins))
    plan = plan_run(config, registry, data_root_of(config, setup.cache_dir))
    evaluator = Evaluator(
        plan.extractor, plan.reference, plan.device,
        kid_subsets=plan.config.kid_subsets, kid_subset_size=plan.config.kid_subset_size,
        weights_path=plan.config.feature_extractor_weights, cache_dir=setup.cache_dir, quiet=True,
        validation=plan.validation, build_features=False,
    )
    shared = shared_artefacts(plan, registry, evaluator)
    shared.sources = {seed: prepare_source(plan, setup.cache_dir, lambda message: None, True, seed, allow_build=False)
                      for seed in setup.source_seeds}
    return shared


def run_pickled_cell(setup: WorkerSetup, result_file: str, spec: bytes, threads: int) -> CellResult:
    """A job's whole work: run the pickled cell ``spec`` with ``threads`` torch threads, unless it has finished.

    The cell arrives pickled and is unpickled only once the run's plugins are
    loaded (a strategy from a ``--plugin`` file is importable only then). If
    ``result_file`` already holds the cell finished (a requeued or repeated
    job), that result is returned and nothing runs. The returned result has no
    images: the grid is in the results folder.
    """
    from tganbench.runner import FINISHED

    path = setup.out_dir / result_file
    if path.is_file():
        record = json.loads(path.read_text())
        if record["row"].get("status") in FINISHED:
            return CellResult(record["row"], record["evals"])
    torch.set_num_threads(threads)
    shared = load_shared(setup)
    result = run_cell(pickle.loads(spec), shared, setup.out_dir)
    result.samples = None
    return result
