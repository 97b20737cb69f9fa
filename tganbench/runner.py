"""``tganbench run``: prepare the shared artefacts once, execute every cell, store the rows, fire the hooks.

Planning and validation live in ``plan.py``, what one cell computes in
``cell.py``, the device and versions in ``environment.py``, the results folder
in ``store.py`` and the report in ``reporting``; this module only orchestrates.
``tganbench export-source`` prepares the source the same way and writes it to a file.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

import tganbench
from tganbench.checkpoint_formats import write_source_file
from tganbench.cell import CellSpec, SharedArtefacts, evaluation_noise
from tganbench.config import RunConfig
from tganbench.environment import device_name, git_revision, versions
from tganbench.errors import UsageError
from tganbench.executors import Executor, WorkerSetup, make_executor
from tganbench.fingerprints import tensor_fingerprint
from tganbench.metric import Metric, MetricContext
from tganbench.metrics.evaluator import Evaluator
from tganbench.metrics.recognition import recognition_scores
from tganbench.plan import Method, Plan, SourcePlan, check_resumable, plan_run, plan_source, protocol
from tganbench.plugins import Registry, notify
from tganbench.source import SourceCheckpoint, file_checkpoint, shipped_checkpoint, source_checkpoint
from tganbench.references import reference_row, reference_sets, source_samples
from tganbench.store import (NO_SOURCE, REFERENCE_GRID, ResultsStore, cell_key, load_cell_results, reference_grid,
                             shots_grid, source_seed_of)

# Statuses of cells a resumed run keeps; "failed" cells are run again.
FINISHED = ("ok", "diverged")

Log = Callable[[str], None]


def run(
    config: RunConfig,
    registry: Registry,
    out_dir: Path,
    cache_dir: Path,
    log: Log = lambda message: print(message, file=sys.stderr),
    quiet: bool = False,
    force_new: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every cell of ``config`` and write the results folder; returns the cells and evals tables.

    A folder that already holds cells of the same protocol is resumed: its
    finished cells (ok or diverged) are kept and skipped, failed ones rerun.
    A cell whose strategy raises is recorded as ``failed`` (traceback in
    ``errors.log``) and the run goes on. Progress shows as bars on a terminal,
    or (no terminal, or ``quiet``) as plain lines. ``config.executor`` says
    where the cells execute (``tganbench.executors``); every cell leaves a
    result file in the folder, and a resumed run also adopts the result files
    of finished cells that ``cells.csv`` does not hold yet (they finished after
    the driver stopped).
    """
    executor = make_executor(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(executor.threads)  # before planning: the device's name in the protocol says it
    try:
        return _run(config, registry, out_dir, cache_dir, executor, log, quiet, force_new)
    finally:
        torch.set_num_threads(threads)


def data_root_of(config: RunConfig, cache_dir: Path) -> Path:
    """Where the run's torchvision datasets are stored: ``--data-root``, else ``<cache-dir>/data``."""
    return Path(config.data_root) if config.data_root else cache_dir / "data"


def _run(config: RunConfig, registry: Registry, out_dir: Path, cache_dir: Path, executor: Executor, log: Log,
         quiet: bool, force_new: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``run`` once the executor's thread count is set."""
    setup_config = config
    plan = plan_run(config, registry, data_root_of(config, cache_dir))
    expected = protocol(plan)
    resuming = check_resumable(out_dir, expected, force_new)
    started = datetime.now(timezone.utc)
    config = plan.config
    where = "" if executor.label == "serial" else f", executor {executor.label}"
    log(f"run: {len(plan.methods)} methods x {len(config.seeds)} seeds x shots "
        f"{','.join(map(str, config.shots))} on '{plan.data.name}' (profile {config.profile}, "
        f"{plan.model.architecture.label}) on {device_name(plan.device)}{where} -> {out_dir}")
    for reason in plan.skipped:
        log(f"skipped {reason}")
    evaluator = Evaluator(
        plan.extractor, plan.reference, plan.device,
        kid_subsets=config.kid_subsets, kid_subset_size=config.kid_subset_size,
        weights_path=config.feature_extractor_weights, cache_dir=cache_dir, log=log, quiet=quiet,
        validation=plan.validation,
    )
    shared = shared_artefacts(plan, registry, evaluator)
    store = ResultsStore(out_dir)
    try:
        return _run_cells(plan, shared, store, registry, resuming, started, cache_dir, log, quiet, executor,
                          setup_config)
    finally:
        store.close()


def cell_specs(plan: Plan, cells: list[tuple[int, int, Method, int]]) -> list[CellSpec]:
    """The picklable descriptions of ``cells`` ((shots, seed, method, source seed) of ``plan``)."""
    return [
        CellSpec(
            config=plan.config, model=plan.model, train=plan.config.train_config(plan.config.target_steps),
            strategy=method.strategy, augmentation=method.augmentation, shots=shots, seed=seed,
            images=plan.shots[shots, seed].images,
            identity={"pair": plan.config.pair, "pair_fingerprint": plan.fingerprint,
                      "reference_fingerprint": plan.reference_fingerprint,
                      "shots_fingerprint": plan.shots[shots, seed].fingerprint},
            source_seed=source_seed,
        )
        for shots, seed, method, source_seed in cells
    ]


def shared_artefacts(plan: Plan, registry: Registry, evaluator: Evaluator) -> SharedArtefacts:
    """What every cell of ``plan`` shares, the source checkpoints aside: the scorer and the metrics that apply."""
    context = MetricContext(evaluator, plan.reference, plan.families)
    metrics = [entry.obj for entry in registry.metrics.values() if entry.obj.applies is None or entry.obj.applies(context)]
    return SharedArtefacts(plan.device, context, metrics, plan.extractor.name, plan.extractor.metric)


def _run_cells(plan: Plan, shared: SharedArtefacts, store: ResultsStore, registry: Registry, resuming: bool,
               started: datetime, cache_dir: Path, log: Log, quiet: bool, executor: Executor,
               setup_config: RunConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The body of ``run`` once the results folder is held: source, manifest, cells, report."""
    hook = registry.manager.hook
    if resuming:
        kept = store.load_finished(lambda row: row.get("status") in FINISHED)
        adopted = _adopt_result_files(store)
        log(f"resume: {kept + adopted} finished cells already in {store.out_dir} are kept and skipped"
            + (f" ({adopted} of them from result files the run before did not fold in)" if adopted else ""))
    else:
        store.clear()
    finished = {cell_key(row) for row in store.cells}
    specs = cell_specs(plan, plan.cells())
    store.set_order([spec.key() for spec in specs])
    todo = [spec for spec in specs if spec.key() not in finished]
    references_done = {_reference_key(row) for row in store.references}
    if any(spec.strategy.from_source for spec in todo) or len(references_done) < _reference_count(plan):
        shared.sources = {seed: prepare_source(plan, cache_dir, log, quiet, seed) for seed in plan.source_seeds}
    manifest = _manifest(plan, shared, store, protocol(plan), started)
    store.write_manifest(manifest)

    total = len(finished) + len(todo)
    store.write_grid(REFERENCE_GRID, plan.reference)
    try:
        started_references = time.perf_counter()
        for shots, seed in plan.shots:
            if not (store.out_dir / shots_grid(shots, seed)).is_file():
                store.write_grid(shots_grid(shots, seed), plan.shots[shots, seed].images)
            _add_references(plan, shared, store, shots, seed, references_done)
        manifest["references_seconds"] = time.perf_counter() - started_references
        store.write_manifest(manifest)
        setup = WorkerSetup(setup_config, cache_dir, store.out_dir, tuple(shared.sources))
        on_evaluated = lambda row: _notify(store, log, hook.tganbench_evaluated, row=row)  # noqa: E731
        for result in executor.run(todo, setup, shared, on_evaluated, quiet):
            if result.traceback:
                store.log_error(f"[{datetime.now(timezone.utc).isoformat()}] cell {result.row['strategy']} "
                                f"{result.row['shots']} shots seed {result.row['seed']} failed:\n{result.traceback}")
            if not executor.in_process:  # the cell ran elsewhere: its evaluations are announced as it arrives
                for row in result.evals:
                    on_evaluated(row)
            store.add_cell(result.row, result.evals)
            _notify(store, log, hook.tganbench_cell_finished, row=result.row)
            log(_cell_line(result.row, shared.metrics, len(store.cells), total, len(plan.source_seeds) > 1))
    except KeyboardInterrupt:
        manifest["interrupted"] = datetime.now(timezone.utc).isoformat()
        store.write_manifest(manifest)
        log(f"interrupted: {len(store.cells)} of {total} cells are finished and kept in {store.out_dir}; "
            f"run the same command with --out {store.out_dir} to resume")
        raise

    cells, evals = pd.DataFrame(store.cells), pd.DataFrame(store.evals)
    manifest["finished"] = datetime.now(timezone.utc).isoformat()
    store.write_manifest(manifest)
    # Imported here, not at the top: worker processes import this module and never build a report.
    from tganbench.reporting.build import build_report

    build_report(store.out_dir)
    _notify(store, log, hook.tganbench_run_finished, out_dir=str(store.out_dir), cells=store.cells)
    return cells, evals


def _adopt_result_files(store: ResultsStore) -> int:
    """Fold in the result files of finished cells that cells.csv does not hold; returns how many."""
    held = {cell_key(row) for row in store.cells}
    adopted = 0
    for record in load_cell_results(store.out_dir):
        row = record["row"]
        if row.get("status") in FINISHED and cell_key(row) not in held:
            store.add_cell(row, record["evals"])
            held.add(cell_key(row))
            adopted += 1
    return adopted


def _reference_key(row: dict[str, Any]) -> tuple[int, int, int, str]:
    """What identifies a reference row: (shots, seed, source seed, kind)."""
    return int(row["shots"]), int(row["seed"]), source_seed_of(row), str(row["reference"])


def _reference_count(plan: Plan) -> int:
    """How many reference rows a finished run holds at most (``real`` may be missing where no image remains)."""
    return len(plan.shots) * (2 + len(plan.source_seeds))


def _add_references(plan: Plan, shared: SharedArtefacts, store: ResultsStore, shots: int, seed: int,
                    done: set[tuple[int, int, int, str]]) -> None:
    """Score and store the reference rows of (shots, seed) that ``done`` does not hold yet, with their grids."""
    rows = []
    for kind, source_seed, images in reference_sets(plan, shared, shots, seed):
        if (shots, seed, source_seed, kind) in done:
            continue
        row = reference_row(kind, source_seed, images, shots, seed, plan, shared)
        row["samples"] = shots_grid(shots, seed) if kind == "copy-shots" else store.write_grid(
            reference_grid(kind, shots, seed, source_seed), images)
        rows.append(row)
        done.add((shots, seed, source_seed, kind))
    if rows:
        store.add_references(rows)


def _manifest(plan: Plan, shared: SharedArtefacts, store: ResultsStore, expected: dict[str, Any],
              started: datetime) -> dict[str, Any]:
    """The run's manifest: config, protocol, metrics, versions, data, source and times."""
    config, evaluator = plan.config, shared.context.evaluator
    source = shared.sources.get(plan.source_seeds[0])
    return {
        "run_id": store.out_dir.name,
        "config": config.to_dict(),
        "protocol": expected,
        "model": plan.model.describe(),
        "methods": [method.label for method in plan.methods],
        "skipped": plan.skipped,
        "metrics": [metric.record() for metric in shared.metrics],
        "versions": versions(),
        "git_revision": git_revision(),
        "device": device_name(plan.device),
        "pair": plan.data.name,
        "pair_fingerprint": plan.fingerprint,
        "pair_sizes": {
            "source": len(plan.data.source),
            "target_pool": len(plan.data.target_pool),
            "reference": len(plan.data.reference),
        },
        "reference_fingerprint": plan.reference_fingerprint,
        "families": list(plan.families) if plan.families else None,
        "reference_recognised": recognition_scores(plan.reference, plan.families)["recognised"] if plan.families else None,
        "n_reference": evaluator.n_reference,
        "split": {"validation": evaluator.n_validation, "test": evaluator.n_reference},
        "reference_features": {"key": evaluator.reference_key, "cached": evaluator.reference_cached},
        "source": {
            "key": source.key if source else None,
            "seconds": source.seconds if source else 0.0,
            "cached": source.cached if source else False,
            "shipped": source.shipped.summary() if source and source.shipped else None,
            "file": source.file.summary() if source and source.file else None,
            **(_source_recognition(plan, source) if source and plan.families else {}),
        },
        "source_seeds": list(plan.source_seeds),
        "sources": [{"seed": seed, "key": checkpoint.key, "seconds": checkpoint.seconds, "cached": checkpoint.cached,
                     "shipped": checkpoint.shipped is not None, "file": checkpoint.file is not None}
                    for seed, checkpoint in sorted(shared.sources.items())],
        "started": started.isoformat(),
        "finished": None,
    }


def prepare_source(plan: Plan | SourcePlan, cache_dir: Path, log: Log, quiet: bool, seed: int | None = None,
                   allow_build: bool = True) -> SourceCheckpoint:
    """The source checkpoint of ``seed`` (default: the first): a file, the shipped one, or pretrained (or cached).

    A file named by ``--source-checkpoint PATH`` comes first (``plan`` has read
    and checked it); then the shipped checkpoint when it fits; else the one
    pretrained for these settings. Without ``allow_build`` a checkpoint that is
    neither a file nor shipped must be in the cache already (workers only load it).
    """
    config = plan.config
    seed = config.source_seed if seed is None else seed
    if plan.source_file is not None:
        return file_checkpoint(plan.source_file, log)
    if plan.shipped is not None:
        try:
            return shipped_checkpoint(plan.shipped, log)
        except (OSError, ValueError, RuntimeError) as error:
            raise UsageError(f"{' '.join(str(error).split())}; or run with --source-checkpoint pretrain") from None
    if config.source_checkpoint == "shipped" and config.source_seeds > 1 and seed == config.source_seed:
        log(f"source: --source-seeds {config.source_seeds} pretrains {config.source_seeds} source checkpoints in the "
            f"run ({config.source_steps} steps each), not the one shipped")
    elif config.source_checkpoint == "shipped" and plan.families and seed == config.source_seed:
        log(f"source: no shipped checkpoint fits {plan.model.architecture.label}, resolution {config.resolution}, "
            f"z_dim {config.z_dim}; pretraining one instead")
    return source_checkpoint(
        plan.data, plan.model, config.train_config(config.source_steps), seed, plan.device,
        cache_dir, log, quiet=quiet, allow_build=allow_build,
    )


def export_source(config: RunConfig, registry: Registry, output: Path, cache_dir: Path, log: Log = print,
                  quiet: bool = False) -> tuple[SourcePlan, SourceCheckpoint, str]:
    """``tganbench export-source``: the source checkpoint ``run`` would start from, written as a tganbench file.

    The checkpoint is resolved exactly as :func:`prepare_source` resolves it for
    a run (a file, shipped, cached, or pretrained into the cache). Returns the
    plan, the checkpoint and the checksum written (docs/checkpoints.md).
    """
    plan = plan_source(config, registry, data_root_of(config, cache_dir))
    checkpoint = prepare_source(plan, cache_dir, log, quiet)
    try:
        checksum = write_source_file(output, plan.model, checkpoint.g, checkpoint.d, source_card(plan, checkpoint))
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error.strerror or error}") from None
    return plan, checkpoint, checksum


def source_card(plan: Plan | SourcePlan, checkpoint: SourceCheckpoint) -> dict[str, Any]:
    """Where an exported source checkpoint came from: origin, pair, seed, steps, seconds, versions (plain values)."""
    config = plan.config
    card: dict[str, Any] = {"origin": "pretrained", "exported": datetime.now(timezone.utc).isoformat(),
                            "tganbench_version": tganbench.__version__, "torch_version": torch.__version__,
                            "seconds": checkpoint.seconds}
    if checkpoint.file is not None:  # converted from another file: that file's record is the provenance
        card.update(origin="file", file=checkpoint.file.summary())
        return json.loads(json.dumps(card, default=str))
    card.update(pair=plan.data.name, pair_fingerprint=plan.data.fingerprint(),
                source_images_fingerprint=tensor_fingerprint(plan.data.source), seed=config.source_seed)
    if checkpoint.shipped is not None:
        shipped = checkpoint.shipped
        card.update(origin="shipped", steps=shipped.card.get("steps"),
                    seed=shipped.card.get("seed", config.source_seed),
                    shipped={"file": shipped.file, "checksum": shipped.checksum})
    else:
        card.update(steps=config.source_steps, train=asdict(config.train_config(config.source_steps)),
                    cache_key=checkpoint.key)
    return json.loads(json.dumps(card, default=str))


def _source_recognition(plan: Plan, source: SourceCheckpoint) -> dict[str, float]:
    """What the source model's samples show: shares recognised as the source and the target family."""
    samples = source_samples(plan.model, source, evaluation_noise(plan.config, 0, plan.device, plan.model.z_dim))
    scores = recognition_scores(samples, plan.families)
    return {"recognised_as_source": scores["recognised_source"], "recognised_as_target": scores["recognised"]}


def _notify(store: ResultsStore, log: Log, hook: Any, **kwargs: Any) -> None:
    """Call an observer hook (``notify``'s policy): one that raises is a warning and a traceback in errors.log."""

    def report(warning: str, details: str) -> None:
        store.log_error(f"[{datetime.now(timezone.utc).isoformat()}] {warning}:\n{details}")
        log(f"tganbench: warning: {warning} (see errors.log)")

    notify(hook, report, **kwargs)


def _cell_line(row: dict[str, Any], metrics: list[Metric], done: int, total: int, sources: bool = False) -> str:
    """The one line printed when a cell ends: its status and each metric's headline (``sources``: name its source)."""
    source = f" source {row['source_seed']}" if sources and row["source_seed"] != NO_SOURCE else ""
    head = f"cell {done}/{total} {row['strategy']} {row['shots']} shots seed {row['seed']}{source}: {row['status']}"
    if row["status"] == "failed":
        return f"{head}: {row['error']} (traceback in errors.log)"
    parts = []
    for metric in metrics:
        value = row[metric.headline]
        text = f"{metric.title} {value:.0%}" if metric.unit == "share" else f"{metric.title} {value:.3g}"
        if metric.best:
            text += f" (best {row[f'{metric.name}_best']:.3g} at step {row[f'{metric.name}_best_step']})"
        parts.append(text)
    return f"{head}, {', '.join(parts)}, train {row['train_seconds']:.1f} s, eval {row['eval_seconds']:.1f} s"
