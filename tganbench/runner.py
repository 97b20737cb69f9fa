"""Expand a run into cells (pair x shots x strategy[params] x seed), run them, store the rows."""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
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
from tganbench.metrics.evaluator import Evaluator
from tganbench.metrics.reference_cache import tensor_fingerprint
from tganbench.models import ModelConfig, build_models
from tganbench.plugins import Registry
from tganbench.render import write_report
from tganbench.source import SourceCheckpoint, source_checkpoint
from tganbench.store import GRID_IMAGES, ResultsStore
from tganbench.strategy import Strategy, parse_strategies
from tganbench.train import sample_images, train

try:
    import resource  # Unix only
except ImportError:  # pragma: no cover
    resource = None

# Evaluation noise is drawn from this offset of the cell seed, apart from the training RNG.
EVAL_NOISE_SEED_OFFSET = 1_000_003


REFERENCE_GRID = "samples/reference.png"


def shots_grid(shots: int, seed: int) -> str:
    """Where the grid of the real training shots of (shots, seed) goes in the results folder."""
    return f"samples/shots-{shots}-seed{seed}.png"


def samples_grid(shots: int, seed: int, label: str) -> str:
    """Where a cell's final samples go: one file per (shots, seed, strategy label)."""
    return f"samples/{shots}shots-seed{seed}-{re.sub(r'[^A-Za-z0-9.=_-]+', '_', label).strip('_')}.png"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a usage error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was requested but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
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
    if config.feature_extractor not in registry.extractors:
        raise UsageError(
            f"unknown feature extractor '{config.feature_extractor}' (available: {', '.join(registry.extractors)})"
        )
    available = {name: entry.obj for name, entry in registry.strategies.items()}
    strategies = parse_strategies(config.strategies, available)
    model = ModelConfig(resolution=config.resolution, width=config.width, z_dim=config.z_dim)
    g, d = build_models(model, seed=0, device=torch.device("cpu"))
    for strategy in strategies:
        try:
            strategy.frozen(g, d)
        except ValueError as error:
            raise UsageError(f"strategy '{strategy.label}': {error}") from None
    device = resolve_device(config.device)
    data = pair.load(config.resolution, data_root)
    shots = {(k, seed): draw_shots(data, k, seed) for k in config.shots for seed in config.seeds}
    extractor = registry.extractors[config.feature_extractor].obj
    reference = data.reference[: config.n_reference]
    return Plan(
        config, device, data, strategies, shots, model, extractor, data.fingerprint(),
        reference, tensor_fingerprint(reference),
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
    cell = {
        "pair": config.pair,
        "pair_fingerprint": plan.fingerprint,
        "reference_fingerprint": plan.reference_fingerprint,
        "shots": shots,
        "shots_fingerprint": plan.shots[shots, seed].fingerprint,
        "strategy": strategy.label,
        "strategy_name": strategy.name,
        "params": json.dumps(strategy.params, sort_keys=True),
        "seed": seed,
    }
    evals: list[dict[str, Any]] = []

    def evaluate(step: int, train_seconds: float) -> None:
        scores = evaluator.score(sample_images(g, noise))
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
    samples = sample_images(g, noise[:GRID_IMAGES])
    final = evals[-1] if result.status == "ok" else None
    best = min(evals, key=lambda row: row["fd"]) if evals else None
    cell.update(
        status=result.status,
        fd_final=final["fd"] if final else float("nan"),
        fd_best=best["fd"] if best else float("nan"),
        fd_best_step=best["step"] if best else -1,
        kid_mean=final["kid_mean"] if final else float("nan"),
        kid_std=final["kid_std"] if final else float("nan"),
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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every cell of ``config`` and write the results folder; returns the cells and evals tables.

    Progress shows as bars on a terminal, or (no terminal, or ``quiet``) as plain lines.
    """
    data_root = Path(config.data_root) if config.data_root else cache_dir / "data"
    plan = plan_run(config, registry, data_root)
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
    source = None
    if any(strategy.from_source for strategy in plan.strategies):
        source = source_checkpoint(
            plan.data,
            plan.model,
            config.train_config(config.source_steps),
            config.source_seed,
            plan.device,
            cache_dir,
            log,
            quiet=quiet,
        )
    manifest = {
        "run_id": out_dir.name,
        "config": config.to_dict(),
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
        "n_reference": evaluator.n_reference,
        "reference_features": {"key": evaluator.reference_key, "cached": evaluator.reference_cached},
        "source": {
            "key": source.key if source else None,
            "seconds": source.seconds if source else 0.0,
            "cached": source.cached if source else False,
        },
        "started": started.isoformat(),
        "finished": None,
    }
    store.write_manifest(manifest)

    store.write_grid(REFERENCE_GRID, plan.reference)
    total = len(config.shots) * len(config.seeds) * len(plan.strategies)
    for shots in config.shots:
        for seed in config.seeds:
            store.write_grid(shots_grid(shots, seed), plan.shots[shots, seed].images)
            for strategy in plan.strategies:
                cell, evals, samples = run_cell(
                    plan, strategy.fresh_copy(), shots, seed, source, evaluator,
                    on_evaluated=lambda row: hook.tganbench_evaluated(row=row), quiet=quiet,
                )
                cell["samples"] = store.write_grid(samples_grid(shots, seed, strategy.label), samples)
                store.add_cell(cell, evals)
                hook.tganbench_cell_finished(row=cell)
                log(f"cell {len(store.cells)}/{total} {cell['strategy']} {shots} shots seed {seed}: "
                    f"{cell['status']}, {cell['metric']} {cell['fd_final']:.2f} "
                    f"(best {cell['fd_best']:.2f} at step {cell['fd_best_step']}), "
                    f"train {cell['train_seconds']:.1f} s, eval {cell['eval_seconds']:.1f} s")

    cells, evals = pd.DataFrame(store.cells), pd.DataFrame(store.evals)
    manifest["finished"] = datetime.now(timezone.utc).isoformat()
    store.write_manifest(manifest)
    write_report(out_dir)
    hook.tganbench_run_finished(out_dir=str(out_dir), cells=store.cells)
    return cells, evals
