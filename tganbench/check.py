"""``tganbench check-plugin``: run one strategy through the plugin contract on the smoke profile, on every architecture."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from tganbench.cell import execute_cell
from tganbench.config import resolve_config
from tganbench.errors import UsageError
from tganbench.metrics.evaluator import Evaluator
from tganbench.plan import plan_run, resolve_model
from tganbench.plugins import Registry
from tganbench.runner import cell_specs, prepare_source, shared_artefacts
from tganbench.strategy import Strategy, parse_strategies
from tganbench.train import TrainResult, train

CPU = torch.device("cpu")


@dataclass
class Check:
    """The outcome of one contract check."""

    name: str
    passed: bool
    detail: str = ""
    skipped: bool = False  # the strategy refuses this architecture (``supports``); not a failure

    def line(self) -> str:
        """``PASS name (detail)``, ``FAIL name: detail`` or ``SKIP name: reason``, one line."""
        if self.skipped:
            return f"SKIP  {self.name}: {self.detail}"
        if self.passed:
            return f"PASS  {self.name}" + (f" ({self.detail})" if self.detail else "")
        return f"FAIL  {self.name}: {self.detail}"


@dataclass
class _Trained:
    state: dict[str, torch.Tensor]
    before: dict[str, torch.Tensor]
    frozen: set[str]
    parameters: set[str]
    result: TrainResult
    g: torch.nn.Module


def _train_once(strategy: Strategy, setup: dict, seed: int) -> _Trained:
    """Train a fresh copy of ``strategy`` for the smoke budget and record what changed."""
    strategy = strategy.fresh_copy()
    g, d = setup["model"].build(seed, CPU)
    if strategy.from_source:
        g.load_state_dict(setup["source"].g)
        d.load_state_dict(setup["source"].d)
    named = {}
    for prefix, module in (("g", g), ("d", d)):
        named.update({f"{prefix}.{n}": t for n, t in itertools.chain(module.named_parameters(), module.named_buffers())})
    parameters = {f"g.{n}" for n, _ in g.named_parameters()} | {f"d.{n}" for n, _ in d.named_parameters()}
    frozen_ids = {id(t) for m in strategy.frozen(g, d) for t in itertools.chain(m.parameters(), m.buffers())}
    frozen = {name for name, tensor in named.items() if id(tensor) in frozen_ids}
    before = {name: tensor.detach().clone() for name, tensor in named.items()}
    source = setup["source"]
    result = train(g, d, strategy, setup["shots"], setup["train"], seed,
                   source_weights={"g": source.g, "d": source.d} if strategy.from_source else None)
    state = {name: tensor.detach().clone() for name, tensor in named.items()}
    return _Trained(state, before, frozen, parameters, result, g)


def _first(names: list[str], verb: str) -> str:
    shown = ", ".join(sorted(names)[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"{shown}{more} {verb}"


def check_strategy(spec: str, registry: Registry, cache_dir: Path,
                   architectures: list[str] | None = None) -> list[Check]:
    """Run every contract check for ``spec`` (``NAME`` or ``NAME[k=v,...]``) on ``architectures`` (default: all).

    Stops early only when it must.
    """
    name = spec.split("[", 1)[0]
    if name not in registry.strategies:
        raise UsageError(f"unknown strategy '{name}' (available: {', '.join(registry.strategies)})")
    unknown = [a for a in architectures or () if a not in registry.architectures]
    if unknown:
        raise UsageError(f"unknown architecture '{unknown[0]}' (available: {', '.join(registry.architectures)})")
    entry = registry.strategies[name]
    problems = [w for w in registry.warnings if f"strategy '{name}'" in w]
    if not entry.obj.description:
        problems.append("the strategy class has no description")
    checks = [Check("registers cleanly", not problems, problems[0] if problems else f"plugin '{entry.plugin}'")]

    available = {n: e.obj for n, e in registry.strategies.items()}
    try:
        strategy = parse_strategies(spec, available)[0]
        defaults = ",".join(f"{k}={v}" for k, v in entry.obj.parameters.items())
        round_trip = parse_strategies(f"{name}[{defaults}]", available)[0].params
        if round_trip != entry.obj.parameters:
            raise UsageError(f"defaults {entry.obj.parameters} parse back as {round_trip}")
    except (UsageError, ValueError) as error:
        checks.append(Check("parameters parse", False, str(error)))
        return checks
    checks.append(Check("parameters parse", True, strategy.label))
    for architecture in architectures or list(registry.architectures):
        checks.extend(check_on_architecture(strategy, architecture, registry, cache_dir))
    return checks


def check_on_architecture(strategy: Strategy, architecture: str, registry: Registry, cache_dir: Path) -> list[Check]:
    """Train ``strategy`` on the smoke profile with ``architecture`` and check the contract; one SKIP if it refuses it."""
    config = resolve_config("smoke", strategies=strategy.label, architecture=architecture, device="cpu")
    try:
        g, d = resolve_model(config, registry).build(0, CPU)
        refusal = strategy.supports(architecture, g, d)
        if refusal:
            return [Check(f"runs on {architecture}", True, refusal, skipped=True)]
        plan = plan_run(config, registry, cache_dir / "data")
    except (UsageError, ValueError) as error:
        return [Check(f"plans on {architecture}", False, str(error))]
    checks: list[Check] = []
    config = plan.config
    cell = cell_specs(plan, plan.cells()[:1])[0]
    setup = {
        "model": plan.model,
        "shots": cell.images,
        "train": cell.train,
        "source": prepare_source(plan, cache_dir, log=lambda message: None, quiet=True),
    }
    first = _train_once(strategy, setup, seed=0)

    non_finite = [n for n, t in first.state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    finite = first.result.status == "ok" and not non_finite
    losses = ", ".join(f"{k} {v:.3g}" for k, v in first.result.losses.items())
    detail = f"{first.result.steps} steps; final {losses}"
    if not finite:
        detail = f"status {first.result.status} at step {first.result.steps}" + (
            f"; non-finite {_first(non_finite, 'weights')}" if non_finite else ""
        )
    checks.append(Check(f"trains without non-finite losses on {architecture}", finite, detail))

    moved = [n for n in first.frozen if not torch.equal(first.before[n], first.state[n])]
    checks.append(Check(
        f"frozen parameters and buffers bit-identical on {architecture}",
        not moved,
        _first(moved, "changed") if moved else f"{len(first.frozen)} tensors frozen",
    ))
    trained = first.parameters - first.frozen
    still = [n for n in trained if torch.equal(first.before[n], first.state[n])]
    checks.append(Check(
        f"every other parameter changed on {architecture}",
        not still,
        _first(still, "did not change") if still else f"{len(trained)} parameters trained",
    ))

    second = _train_once(strategy, setup, seed=0)
    different = [n for n in first.state if not torch.equal(first.state[n], second.state[n])]
    same_losses = first.result.losses == second.result.losses or not finite
    checks.append(Check(
        f"deterministic for a seed on {architecture}",
        not different and same_losses,
        _first(different, "differ between two runs") if different else ("" if same_losses else "losses differ"),
    ))

    evaluator = Evaluator(plan.extractor, plan.reference, CPU, kid_subsets=config.kid_subsets,
                          kid_subset_size=config.kid_subset_size, validation=plan.validation)
    shared = shared_artefacts(plan, registry, evaluator)
    shared.sources = {cell.source_seed: setup["source"]}
    row = execute_cell(cell, shared, quiet=True).row
    scores = {column: row[column] for metric in shared.metrics for column in metric.columns.values()}
    checks.append(Check(
        f"finite metrics on {architecture}",
        all(math.isfinite(v) for v in scores.values()),
        ", ".join(f"{k} {v:.4g}" for k, v in scores.items()),
    ))
    return checks
