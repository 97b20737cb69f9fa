"""Planning a run: resolve every name, validate every input, lay out the cells, and check resumability.

Everything a run needs is decided here, before the first step is trained, so a
bad input costs seconds, never a finished cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tganbench.augmentation import Augmentation, cell_label, parse_augmentations
from tganbench.checkpoints import SourceFile, load_source_file
from tganbench.config import RunConfig
from tganbench.data.pairs import Pair, PairData, Shots, draw_shots
from tganbench.environment import device_name, resolve_device
from tganbench.errors import UsageError
from tganbench.fingerprints import tensor_fingerprint
from tganbench.models import Architecture, ModelSpec
from tganbench.parameters import parse_component, split_top_level
from tganbench.plugins import Registry
from tganbench.shipped_sources import ShippedSource, find_shipped
from tganbench.store import NO_SOURCE
from tganbench.strategy import Strategy, parse_strategies

# Settings of the architecture that have their own flags (--width, --d-norm) for the default architecture.
ARCHITECTURE_SHORTHANDS = ("width", "d_norm")


@dataclass(frozen=True)
class Method:
    """What one cell trains: a strategy, optionally with an augmentation of D's inputs."""

    strategy: Strategy
    augmentation: Augmentation | None = None

    @property
    def label(self) -> str:
        """The cell's label everywhere: ``freeze-d`` or ``freeze-d+diffaugment[policy=color]``."""
        return cell_label(self.strategy.label, self.augmentation)


@dataclass
class Plan:
    """A validated run: everything is checked before the first step is trained."""

    config: RunConfig
    device: torch.device
    data: PairData
    methods: list[Method]
    shots: dict[tuple[int, int], Shots]  # (shot count, seed) -> the training images
    model: ModelSpec
    extractor: Any
    fingerprint: str
    reference: torch.Tensor  # the held-out test images: every reported value is scored on them
    reference_fingerprint: str
    families: tuple[str, str] | None  # the pair's shape families, when samples can be recognised
    shipped: ShippedSource | None  # the shipped source checkpoint the run starts from, if one fits
    skipped: list[str] = field(default_factory=list)  # "label: reason" for combinations that do not apply
    validation: torch.Tensor | None = None  # further held-out images that only choose the best step
    source_file: SourceFile | None = None  # the checkpoint file the run starts from (--source-checkpoint PATH)

    @property
    def source_seeds(self) -> tuple[int, ...]:
        """The seeds of the run's source checkpoints."""
        first = self.config.source_seed
        return tuple(range(first, first + self.config.source_seeds))

    def cells(self) -> list[tuple[int, int, Method, int]]:
        """Every (shots, seed, method, source seed) of the grid, in the order rows are written.

        A method that starts from the source runs once per source checkpoint;
        one that does not (scratch) runs once, with source seed ``NO_SOURCE``.
        """
        return [(shots, seed, method, source_seed) for shots in self.config.shots for seed in self.config.seeds
                for method in self.methods
                for source_seed in (self.source_seeds if method.strategy.from_source else (NO_SOURCE,))]


@dataclass
class SourcePlan:
    """What decides a run's source checkpoint: the pair's images, the models, the settings, the device.

    ``tganbench export-source`` plans this much; a run plans it as part of its :class:`Plan`.
    """

    config: RunConfig
    device: torch.device
    data: PairData
    model: ModelSpec
    families: tuple[str, str] | None
    shipped: ShippedSource | None
    source_file: SourceFile | None


def resolve_pair(config: RunConfig, registry: Registry) -> Pair:
    """The pair a run uses: two image folders (``--source``/``--target``) or a registered pair."""
    if config.source_dir is not None:
        from tganbench.data.folders import ImageFolderPair

        return ImageFolderPair(config.source_dir, config.target_dir, config.held_out)
    if config.pair not in registry.pairs:
        raise UsageError(f"unknown pair '{config.pair}' (available: {', '.join(registry.pairs)})")
    return registry.pairs[config.pair].obj


def resolve_model(config: RunConfig, registry: Registry) -> ModelSpec:
    """The run's architecture with its parameters; ``--width`` / ``--d-norm`` fill parameters of those names."""
    available = {name: entry.obj for name, entry in registry.architectures.items()}
    architecture: Architecture = parse_component(config.architecture, available, "architecture")
    shorthands = {name: getattr(config, name) for name in ARCHITECTURE_SHORTHANDS
                  if name in architecture.parameters and name not in architecture.overrides}
    try:
        architecture = type(architecture)(**{**shorthands, **architecture.overrides})
        spec = ModelSpec(architecture, config.resolution, config.z_dim)
        spec.build(0, torch.device("cpu"))
    except ValueError as error:
        raise UsageError(f"architecture '{architecture.name}': {error}") from None
    return spec


def resolve_methods(config: RunConfig, registry: Registry, model: ModelSpec) -> tuple[list[Method], list[str]]:
    """Strategies crossed with augmentations; returns the methods to run and the skipped ones with reasons.

    A plain ``--strategies`` item is crossed with every ``--augment`` item; a composed item
    (``freeze-d+diffaugment``, ``all+ada``) names its augmentation itself and is run as named.
    """
    strategy_classes = {name: e.obj for name, e in registry.strategies.items()}
    augmentation_classes = {name: e.obj for name, e in registry.augmentations.items()}
    crossed = parse_augmentations(config.augment, augmentation_classes)
    g, d = model.build(0, torch.device("cpu"))
    methods: dict[str, Method] = {}
    skipped: list[str] = []
    for item in split_top_level(config.strategies):
        parts = split_top_level(item, "+")
        if len(parts) > 2 or not all(parts):
            raise UsageError(f"malformed strategy '{item}': expected STRATEGY or STRATEGY+AUGMENTATION")
        composed = len(parts) == 2
        augmentations = parse_augmentations(parts[1], augmentation_classes) if composed else crossed
        for strategy in parse_strategies(parts[0], strategy_classes):
            try:
                strategy.frozen(g, d)
            except ValueError as error:
                raise UsageError(f"strategy '{strategy.label}': {error}") from None
            reason = strategy.supports(model.architecture.name, g, d)
            if not reason and config.cuda_graph and strategy.cuda_graph_refusal:
                reason = strategy.cuda_graph_refusal
            if reason:
                skipped.append(f"{strategy.label}: {reason}")
                continue
            crossing = augmentations
            if not strategy.adversarial and any(augmentations):
                labels = ", ".join(a.label for a in augmentations if a)
                skipped.append(f"{strategy.label}+({labels}): it trains no discriminator, so augmentations of "
                               "D's inputs do not apply" + ("" if composed else "; it runs once, without"))
                crossing = [] if composed else [None]
            for augmentation in crossing:
                method = Method(strategy, augmentation)
                methods.setdefault(method.label, method)
    if not methods:
        raise UsageError("nothing to run: " + "; ".join(skipped))
    return list(methods.values()), list(dict.fromkeys(skipped))


def plan_run(config: RunConfig, registry: Registry, data_root: Path) -> Plan:
    """Resolve names and validate every input; raises UsageError on the first problem."""
    pair = resolve_pair(config, registry)
    config = config.for_pair(getattr(pair, "symmetries", ()))
    if config.feature_extractor not in registry.extractors:
        raise UsageError(
            f"unknown feature extractor '{config.feature_extractor}' (available: {', '.join(registry.extractors)})"
        )
    model = resolve_model(config, registry)
    methods, skipped = resolve_methods(config, registry, model)
    source = _plan_source(config, registry, pair, model, data_root)
    data = source.data
    shots = {(k, seed): draw_shots(data, k, seed) for k in config.shots for seed in config.seeds}
    extractor = registry.extractors[config.feature_extractor].obj
    reference, validation = split_held_out(data.reference, config.n_reference, config.n_validation)
    return Plan(
        config, source.device, data, methods, shots, model, extractor, data.fingerprint(),
        reference, tensor_fingerprint(reference), pair.families, source.shipped, skipped, validation,
        source.source_file,
    )


def plan_source(config: RunConfig, registry: Registry, data_root: Path) -> SourcePlan:
    """Resolve and validate what the source checkpoint of ``config`` depends on (not the grid); UsageError if bad."""
    pair = resolve_pair(config, registry)
    config = config.for_pair(getattr(pair, "symmetries", ()))
    return _plan_source(config, registry, pair, resolve_model(config, registry), data_root)


def _plan_source(config: RunConfig, registry: Registry, pair: Pair, model: ModelSpec, data_root: Path) -> SourcePlan:
    """The device, a checkpoint file (read and checked against ``model``), the pair's images, a shipped source."""
    device = resolve_device(config.device, config.cuda_graph)
    source_file = None
    if config.checkpoint_file is not None:
        formats = [entry.obj for entry in registry.checkpoint_formats.values()]
        source_file = load_source_file(Path(config.checkpoint_file), model, formats)
    data = pair.load(config.resolution, data_root)
    shipped = None
    if config.source_checkpoint == "shipped" and config.source_seeds == 1:
        shipped = find_shipped(tensor_fingerprint(data.source), model)
    return SourcePlan(config, device, data, model, pair.families, shipped, source_file)


def split_held_out(held_out: torch.Tensor, n_test: int, n_validation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out images as (test, validation): the first ``n_test``, then the next ``n_validation``.

    The test images are the ones every earlier version scored against, so final
    values stay comparable. When the held-out set is smaller than both together,
    it is shared in proportion to the two sizes (each part keeps at least one image).
    """
    available = len(held_out)
    if available < 2:
        raise UsageError(f"the pair holds {available} held-out image(s); a validation/test split needs at least 2")
    if available < n_test + n_validation:
        n_test = min(available - 1, max(1, round(available * n_test / (n_test + n_validation))))
        n_validation = available - n_test
    return held_out[:n_test], held_out[n_test : n_test + n_validation]



def protocol(plan: Plan) -> dict[str, Any]:
    """What must match for two runs' cells to belong in one results folder (the grid axes may differ).

    Everything in the run config except the grid (strategies, augmentations,
    seeds, shots, source seeds), presentation, file locations and the executor (it changes
    where cells run, not what they compute; the thread count it sets is in the device's
    name), plus the pair's content, the resolved architecture and the device.

    The source weights enter as where they come from: shipped (with its checksum),
    pretrained in the run (the settings above decide them), or a checkpoint file,
    named by its format and the fingerprint of its weights, never by its path
    (a run whose file moved resumes; one whose weights changed does not), and
    without the source steps, which decide nothing then.
    """
    ignored = {"strategies", "augment", "seeds", "shots", "source_seeds", "profile", "plugins", "source_dir",
               "target_dir", "data_root", "fd_target", "executor",
               "executor_setup"}
    settings = {k: v for k, v in plan.config.to_dict().items() if k not in ignored}
    source = f"shipped {plan.shipped.checksum}" if plan.shipped else "pretrained in the run"
    if plan.source_file is not None:
        settings["source_checkpoint"] = "file"
        del settings["source_steps"]
        source = f"{plan.source_file.format} file {plan.source_file.checksum}"
    return {**settings, "model": plan.model.describe(), "pair_fingerprint": plan.fingerprint,
            "source_weights": source, "device": device_name(plan.device)}


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

