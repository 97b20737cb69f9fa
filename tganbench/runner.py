"""Expand a run into cells (pair x shots x strategy[params] x seed), run them, store the rows."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

import tganbench
from tganbench.config import RunConfig
from tganbench.data.pairs import Pair, PairData, Shots, draw_shots
from tganbench.errors import UsageError
from tganbench.fingerprints import tensor_fingerprint
from tganbench.metrics.evaluator import Evaluator
from tganbench.metrics.recognition import recognition_scores
from tganbench.models import ModelConfig, build_models
from tganbench.plugins import Registry
from tganbench.reporting.build import build_report
from tganbench.shipped_sources import ShippedSource, find_shipped
from tganbench.source import SourceCheckpoint, shipped_checkpoint, source_checkpoint
from tganbench.store import GRID_IMAGES, REFERENCE_GRID, ResultsStore, cell_key, samples_grid, shots_grid
from tganbench.strategy import Strategy, parse_strategies
from tganbench.train import sample_images, train

try:
    import resource  # Unix only
except ImportError:  # pragma: no cover
    resource = None

# Evaluation noise is drawn from this offset of the cell seed, apart from the training RNG.
EVAL_NOISE_SEED_OFFSET = 1_000_003


# Statuses of cells a resumed run keeps; "failed" cells are run again.
FINISHED = ("ok", "diverged")


def resolve_device(name: str, cuda_graph: bool = False) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA (or CUDA graphs) without one is a usage error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was requested but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if cuda_graph and name != "cuda":
        raise UsageError("--cuda-graph needs a CUDA device, and none is available")
    if name == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels once
    return torch.device(name)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "tganbench": tganbench.__version__}
    for package in ("torch", "torchvision", "torch-fidelity", "pluggy", "pandas"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "missing"
    return out


def _git_revision() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(tganbench.__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def device_name(device: torch.device) -> str:
    """Human-readable device for tables and the manifest."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@dataclass
class Plan:
    """A validated run: everything is checked before the first step is trained."""

    config: RunConfig
    device: torch.device
    data: PairData
    strategies: list[Strategy]
    shots: dict[tuple[int, int], Shots]  # (shot count, seed) -> the training images
    model: ModelConfig
    extractor: Any
    fingerprint: str
    reference: torch.Tensor
    reference_fingerprint: str
    families: tuple[str, str] | None  # the pair's shape families, when samples can be recognised
    shipped: ShippedSource | None  # the shipped source checkpoint the run starts from, if one fits


def resolve_pair(config: RunConfig, registry: Registry) -> Pair:
    """The pair a run uses: two image folders (``--source``/``--target``) or a registered pair."""
    if config.source_dir is not None:
        from tganbench.data.folders import ImageFolderPair

        return ImageFolderPair(config.source_dir, config.target_dir, config.held_out)
    if config.pair not in registry.pairs:
        raise UsageError(f"unknown pair '{config.pair}' (available: {', '.join(registry.pairs)})")
    return registry.pairs[config.pair].obj


def plan_run(config: RunConfig, registry: Registry, data_root: Path) -> Plan:
    """Resolve names and validate every input; raises UsageError on the first problem."""
    pair = resolve_pair(config, registry)
    config = config.for_pair(getattr(pair, "symmetries", ()))
    if config.feature_extractor not in registry.extractors:
        raise UsageError(
            f"unknown feature extractor '{config.feature_extractor}' (available: {', '.join(registry.extractors)})"
        )
    available = {name: entry.obj for name, entry in registry.strategies.items()}
    strategies = parse_strategies(config.strategies, available)
    model = config.model_config()
    g, d = build_models(model, seed=0, device=torch.device("cpu"))
    for strategy in strategies:
        try:
            strategy.frozen(g, d)
        except ValueError as error:
            raise UsageError(f"strategy '{strategy.label}': {error}") from None
    device = resolve_device(config.device, config.cuda_graph)
    data = pair.load(config.resolution, data_root)
    shots = {(k, seed): draw_shots(data, k, seed) for k in config.shots for seed in config.seeds}
    extractor = registry.extractors[config.feature_extractor].obj
    reference = data.reference[: config.n_reference]
    shipped = find_shipped(tensor_fingerprint(data.source), model) if config.source_checkpoint == "shipped" else None
    return Plan(
        config, device, data, strategies, shots, model, extractor, data.fingerprint(),
        reference, tensor_fingerprint(reference), pair.families, shipped,
    )


def peak_memory(device: torch.device) -> dict[str, Any]:
    """Peak memory of the cell just run: CUDA max allocated, or on CPU the process's peak RSS so far."""
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20, "peak_memory_kind": "cuda max allocated"}
    if resource is None:
        return {"peak_memory_mb": float("nan"), "peak_memory_kind": "unavailable"}
    # ru_maxrss is in KiB on Linux (bytes on macOS); it is a high-water mark of the whole process.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 2**20 if platform.system() == "Darwin" else 2**10
    return {"peak_memory_mb": rss / scale, "peak_memory_kind": "process peak RSS"}


def evaluation_noise(config: RunConfig, seed: int, device: torch.device) -> torch.Tensor:
    """The fixed latents every strategy is evaluated on for ``seed`` (drawn on the CPU, so device-independent)."""
    generator = torch.Generator().manual_seed(seed + EVAL_NOISE_SEED_OFFSET)
    return torch.randn((config.n_generated, config.z_dim), generator=generator).to(device)


def cell_identity(plan: Plan, strategy: Strategy, shots: int, seed: int) -> dict[str, Any]:
    """The columns of a cells.csv row that say which cell it is and which data it used."""
    return {
        "pair": plan.config.pair,
        "pair_fingerprint": plan.fingerprint,
        "reference_fingerprint": plan.reference_fingerprint,
        "shots": shots,
        "shots_fingerprint": plan.shots[shots, seed].fingerprint,
        "strategy": strategy.label,
        "strategy_name": strategy.name,
        "params": json.dumps(strategy.params, sort_keys=True),
        "seed": seed,
    }


def failed_cell(plan: Plan, strategy: Strategy, shots: int, seed: int, error: BaseException) -> dict[str, Any]:
    """The cells.csv row of a cell whose strategy (or a plugin hook) raised: status ``failed`` and the error."""
    message = " ".join(f"{type(error).__name__}: {error}".split())
    if isinstance(error, torch.cuda.OutOfMemoryError):
        config = plan.config
        message = (f"out of GPU memory at batch size {config.batch_size}, resolution {config.resolution}, "
                   f"width {config.width} ({message[:200]})")
    return {
        **cell_identity(plan, strategy, shots, seed),
        "status": "failed",
        "error": message,
        "device": device_name(plan.device),
        "metric": plan.extractor.metric,
        "extractor": plan.extractor.name,
        "n_generated": plan.config.n_generated,
        "n_reference": len(plan.reference),
        "tganbench_version": tganbench.__version__,
        "torch_version": torch.__version__,
    }


def protocol(plan: Plan) -> dict[str, Any]:
    """What must match for two runs' cells to belong in one results folder (the grid axes may differ).

    Everything in the run config except the grid (strategies, seeds, shots),
    presentation and file locations, plus the pair's content and the device.
    """
    ignored = {"strategies", "seeds", "shots", "profile", "plugins", "source_dir", "target_dir", "data_root",
               "fd_target"}
    settings = {k: v for k, v in plan.config.to_dict().items() if k not in ignored}
    source = f"shipped {plan.shipped.checksum}" if plan.shipped else "pretrained in the run"
    return {**settings, "pair_fingerprint": plan.fingerprint, "source_weights": source,
            "device": device_name(plan.device)}


def check_resumable(out_dir: Path, expected: dict[str, Any], force_new: bool) -> bool:
    """Whether ``out_dir`` holds earlier results of this protocol (to resume); read-only.

    Results of another protocol are a UsageError, unless ``force_new`` (then
    False: the caller discards them once it holds the folder's lock).
    """
    manifest_path = out_dir / "manifest.json"
    if not manifest_path.is_file():
        return False
    try:
        previous = json.loads(manifest_path.read_text()).get("protocol")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous == json.loads(json.dumps(expected, default=str)):
        return True
    if force_new:
        return False
    if previous is None:
        raise UsageError(f"{out_dir} holds results this version cannot resume; use another --out or --force-new")
    changed = [f"{k} {previous.get(k)!r} -> {v!r}" for k, v in expected.items() if previous.get(k) != v]
    raise UsageError(
        f"{out_dir} holds a run with a different protocol ({'; '.join(changed[:4])}); "
        "use another --out, or --force-new to discard its results"
    )


def run_cell(
    plan: Plan,
    strategy: Strategy,
    shots: int,
    seed: int,
    source: SourceCheckpoint | None,
    evaluator: Evaluator,
    on_evaluated: Callable[[dict[str, Any]], None] = lambda row: None,
    quiet: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]], torch.Tensor]:
    """Train one strategy on ``shots`` images for one seed and evaluate it.

    Returns its cells.csv row, its evals.csv rows and the final samples of the
    first 64 evaluation latents (uint8), for the sample grid. ``on_evaluated(row)``
    is called as soon as each evaluation is scored.
    """
    config, device = plan.config, plan.device
    g, d = build_models(plan.model, seed, device)
    if strategy.from_source:
        g.load_state_dict(source.g)
        d.load_state_dict(source.d)
    noise = evaluation_noise(config, seed, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cell = cell_identity(plan, strategy, shots, seed)
    evals: list[dict[str, Any]] = []

    def evaluate(step: int, train_seconds: float, generator: torch.nn.Module) -> None:
        # KID only for the final model, the one the tables report; curves and best FD use FD.
        samples = sample_images(generator, noise)
        scores = evaluator.score(samples, kid=step == config.target_steps)
        if plan.families:
            scores.update(recognition_scores(samples, plan.families))
        keys = {k: cell[k] for k in ("pair", "shots", "strategy", "seed")}
        evals.append({**keys, "step": step, "train_seconds": train_seconds, **scores})
        on_evaluated(evals[-1])

    result = train(
        g,
        d,
        strategy,
        plan.shots[shots, seed].images.to(device),
        config.train_config(config.target_steps),
        seed,
        evaluate=evaluate,
        eval_every=config.eval_every,
        progress=f"{strategy.label} {shots} shots seed {seed}",
        quiet=quiet,
    )
    samples = sample_images(result.eval_generator, noise[:GRID_IMAGES])
    final = evals[-1] if result.status == "ok" else None
    best = min(evals, key=lambda row: row["fd"]) if evals else None
    cell.update(
        status=result.status,
        fd_final=final["fd"] if final else float("nan"),
        fd_best=best["fd"] if best else float("nan"),
        fd_best_step=best["step"] if best else -1,
        kid_mean=final["kid_mean"] if final else float("nan"),
        kid_std=final["kid_std"] if final else float("nan"),
        **({"recognised": final["recognised"] if final else float("nan"),
            "recognised_source": final["recognised_source"] if final else float("nan")} if plan.families else {}),
        steps=result.steps,
        train_seconds=result.train_seconds,
        eval_seconds=result.eval_seconds,
        steps_per_second=result.steps / result.train_seconds if result.train_seconds else float("nan"),
        trainable_params=result.trainable_params,
        total_params=sum(p.numel() for p in g.parameters()) + sum(p.numel() for p in d.parameters()),
        **peak_memory(device),
        device=device_name(device),
        metric=plan.extractor.metric,
        extractor=plan.extractor.name,
        n_generated=config.n_generated,
        n_reference=evaluator.n_reference,
        tganbench_version=tganbench.__version__,
        torch_version=torch.__version__,
    )
    return cell, evals, samples


def run(
    config: RunConfig,
    registry: Registry,
    out_dir: Path,
    cache_dir: Path,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    quiet: bool = False,
    force_new: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every cell of ``config`` and write the results folder; returns the cells and evals tables.

    A folder that already holds cells of the same protocol is resumed: its
    finished cells (ok or diverged) are kept and skipped, failed ones rerun.
    A cell whose strategy or a plugin hook raises is recorded as ``failed``
    (traceback in ``errors.log``) and the run goes on. Progress shows as bars on
    a terminal, or (no terminal, or ``quiet``) as plain lines.
    """
    data_root = Path(config.data_root) if config.data_root else cache_dir / "data"
    plan = plan_run(config, registry, data_root)
    expected = protocol(plan)
    resuming = check_resumable(out_dir, expected, force_new)
    hook = registry.manager.hook
    started = datetime.now(timezone.utc)
    log(f"run: {len(plan.strategies)} strategies x {len(config.seeds)} seeds x shots "
        f"{','.join(map(str, config.shots))} on '{plan.data.name}' (profile {config.profile}) "
        f"on {device_name(plan.device)} -> {out_dir}")

    evaluator = Evaluator(
        plan.extractor,
        plan.reference,
        plan.device,
        kid_subsets=config.kid_subsets,
        kid_subset_size=config.kid_subset_size,
        weights_path=config.feature_extractor_weights,
        cache_dir=cache_dir,
        log=log,
        quiet=quiet,
    )
    store = ResultsStore(out_dir)
    try:
        return _run_cells(plan, store, evaluator, expected, resuming, started, hook, cache_dir, log, quiet)
    finally:
        store.close()


def _run_cells(
    plan: Plan,
    store: ResultsStore,
    evaluator: Evaluator,
    expected: dict[str, Any],
    resuming: bool,
    started: datetime,
    hook: Any,
    cache_dir: Path,
    log: Callable[[str], None],
    quiet: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The body of ``run`` once the results folder is held: source, manifest, cells, report."""
    config = plan.config
    if resuming:
        kept = store.load_finished(lambda row: row.get("status") in FINISHED)
        log(f"resume: {kept} finished cells already in {store.out_dir} are kept and skipped")
    else:
        store.clear()
    finished = {cell_key(row) for row in store.cells}
    todo = [
        (shots, seed, strategy)
        for shots in config.shots for seed in config.seeds for strategy in plan.strategies
        if (shots, strategy.label, seed) not in finished
    ]
    source = None
    if any(strategy.from_source for _, _, strategy in todo):
        source = _source(plan, cache_dir, log, quiet)
    manifest = {
        "run_id": store.out_dir.name,
        "config": config.to_dict(),
        "protocol": expected,
        "versions": _versions(),
        "git_revision": _git_revision(),
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
        "reference_features": {"key": evaluator.reference_key, "cached": evaluator.reference_cached},
        "source": {
            "key": source.key if source else None,
            "seconds": source.seconds if source else 0.0,
            "cached": source.cached if source else False,
            "shipped": source.shipped.summary() if source and source.shipped else None,
            **(_source_recognition(plan, source) if source and plan.families else {}),
        },
        "started": started.isoformat(),
        "finished": None,
    }
    store.write_manifest(manifest)

    total = len(finished) + len(todo)
    store.write_grid(REFERENCE_GRID, plan.reference)
    try:
        for shots, seed, strategy in todo:
            if not (store.out_dir / shots_grid(shots, seed)).is_file():
                store.write_grid(shots_grid(shots, seed), plan.shots[shots, seed].images)
            try:
                cell, evals, samples = run_cell(
                    plan, strategy.fresh_copy(), shots, seed, source, evaluator,
                    on_evaluated=lambda row: hook.tganbench_evaluated(row=row), quiet=quiet,
                )
                cell["samples"] = store.write_grid(samples_grid(shots, seed, strategy.label), samples)
            except Exception as error:  # noqa: BLE001 - one failing cell must not cost the others
                cell, evals = failed_cell(plan, strategy, shots, seed, error), []
                store.log_error(f"[{datetime.now(timezone.utc).isoformat()}] cell {strategy.label} {shots} shots "
                                f"seed {seed} failed:\n{traceback.format_exc()}")
                if plan.device.type == "cuda":
                    torch.cuda.empty_cache()
            store.add_cell(cell, evals)
            _notify(store, log, "tganbench_cell_finished", lambda: hook.tganbench_cell_finished(row=cell))
            log(_cell_line(cell, len(store.cells), total))
    except KeyboardInterrupt:
        manifest["interrupted"] = datetime.now(timezone.utc).isoformat()
        store.write_manifest(manifest)
        log(f"interrupted: {len(store.cells)} of {total} cells are finished and kept in {store.out_dir}; "
            f"run the same command with --out {store.out_dir} to resume")
        raise

    cells, evals = pd.DataFrame(store.cells), pd.DataFrame(store.evals)
    manifest["finished"] = datetime.now(timezone.utc).isoformat()
    store.write_manifest(manifest)
    build_report(store.out_dir)
    _notify(store, log, "tganbench_run_finished",
            lambda: hook.tganbench_run_finished(out_dir=str(store.out_dir), cells=store.cells))
    return cells, evals


def _source(plan: Plan, cache_dir: Path, log: Callable[[str], None], quiet: bool) -> SourceCheckpoint:
    """The source checkpoint of the run: the shipped one when it fits, else pretrained (or cached)."""
    config = plan.config
    if plan.shipped is not None:
        try:
            return shipped_checkpoint(plan.shipped, log)
        except (OSError, ValueError, RuntimeError) as error:
            raise UsageError(f"{' '.join(str(error).split())}; or run with --source-checkpoint pretrain") from None
    if config.source_checkpoint == "shipped" and plan.families:
        log(f"source: no shipped checkpoint fits width {config.width}, resolution {config.resolution}, "
            f"z_dim {config.z_dim}, d_norm {config.d_norm}; pretraining one instead")
    return source_checkpoint(
        plan.data, plan.model, config.train_config(config.source_steps), config.source_seed, plan.device,
        cache_dir, log, quiet=quiet,
    )


def _source_recognition(plan: Plan, source: SourceCheckpoint) -> dict[str, float]:
    """What the source model's samples show: shares recognised as the source and the target family."""
    g, _ = build_models(plan.model, 0, plan.device)
    g.load_state_dict(source.g)
    scores = recognition_scores(sample_images(g, evaluation_noise(plan.config, 0, plan.device)), plan.families)
    return {"recognised_as_source": scores["recognised_source"], "recognised_as_target": scores["recognised"]}


def _notify(store: ResultsStore, log: Callable[[str], None], name: str, call: Callable[[], Any]) -> None:
    """Call an observer hook; a plugin that raises is reported and logged, and the run goes on."""
    try:
        call()
    except Exception as error:  # noqa: BLE001 - a broken logger plugin must not stop the benchmark
        store.log_error(f"[{datetime.now(timezone.utc).isoformat()}] hook {name} raised:\n{traceback.format_exc()}")
        log(f"tganbench: warning: a plugin's {name} hook raised {type(error).__name__}: {error} (see errors.log)")


def _cell_line(cell: dict[str, Any], done: int, total: int) -> str:
    """The one line printed when a cell ends."""
    head = f"cell {done}/{total} {cell['strategy']} {cell['shots']} shots seed {cell['seed']}: {cell['status']}"
    if cell["status"] == "failed":
        return f"{head}: {cell['error']} (traceback in errors.log)"
    return (f"{head}, {cell['metric']} {cell['fd_final']:.2f} (best {cell['fd_best']:.2f} at step "
            f"{cell['fd_best_step']}), train {cell['train_seconds']:.1f} s, eval {cell['eval_seconds']:.1f} s")
