"""The plugin manager: built-ins, entry-point plugins and ``--plugin`` modules, one registry."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import pluggy

from tganbench import hookspecs
from tganbench.errors import UsageError

ENTRY_POINT_GROUP = "tganbench"

# Built-ins are registered exactly like third-party plugins, one module each.
DEFAULT_PLUGINS = (
    "tganbench.strategies.scratch",
    "tganbench.strategies.finetune",
    "tganbench.strategies.freeze_d",
    "tganbench.strategies.freeze_g",
    "tganbench.strategies.batchstat",
    "tganbench.augmentations.diffaugment",
    "tganbench.models.dcgan",
    "tganbench.metrics.standard",
    "tganbench.data.embedded",
    "tganbench.data.torchvision_pairs",
    "tganbench.metrics.extractors",
)


@dataclass
class Registered:
    """A registered object (strategy class, pair, extractor spec) and the plugin that registered it."""

    obj: Any
    plugin: str


@dataclass
class Registry:
    """Everything the loaded plugins registered, by name, plus load-time warnings."""

    manager: pluggy.PluginManager
    strategies: dict[str, Registered] = field(default_factory=dict)
    pairs: dict[str, Registered] = field(default_factory=dict)
    extractors: dict[str, Registered] = field(default_factory=dict)
    architectures: dict[str, Registered] = field(default_factory=dict)
    metrics: dict[str, Registered] = field(default_factory=dict)
    augmentations: dict[str, Registered] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _import_plugin(spec: str) -> ModuleType:
    """Import ``spec``, a dotted module path or the path of a ``.py`` file."""
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_file():
            raise ImportError(f"no such file: {spec}")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        module_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def _names_from_env(variable: str) -> set[str] | None:
    """Comma-separated names in an environment variable; None when it is not set."""
    value = os.environ.get(variable)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The ``tganbench`` entry points, filtered by TGANBENCH_LOAD_PLUGINS / TGANBENCH_DISABLE_PLUGINS.

    TGANBENCH_LOAD_PLUGINS set (even empty) loads only the named entry points;
    TGANBENCH_DISABLE_PLUGINS loads all but the named ones.
    """
    found = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    only, skip = _names_from_env("TGANBENCH_LOAD_PLUGINS"), _names_from_env("TGANBENCH_DISABLE_PLUGINS") or set()
    return [ep for ep in found if (only is None or ep.name in only) and ep.name not in skip]


def _collect(registry: Registry, hook_name: str, kind: str, into: dict[str, Registered]) -> None:
    """Call one registration hook plugin by plugin, so a clash or a crash names its plugin."""
    manager = registry.manager
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        plugin_name = manager.get_name(impl.plugin)

        def register(obj: Any, _plugin: str = plugin_name) -> None:
            name = obj.name
            if name in into:
                registry.warnings.append(
                    f"plugin '{_plugin}' registers {kind} '{name}', already registered by "
                    f"'{into[name].plugin}'; keeping the first"
                )
                return
            into[name] = Registered(obj, _plugin)

        try:
            impl.function(register=register)
        except Exception as error:  # a broken plugin must not take the others down
            registry.warnings.append(f"plugin '{plugin_name}' failed in {hook_name}: {type(error).__name__}: {error}")


def load_plugins(extra: Sequence[str] = ()) -> Registry:
    """Load built-ins, then ``tganbench`` entry points, then the ``extra`` modules or files.

    A plugin that fails to import is reported in ``Registry.warnings`` and skipped.
    A hook implementation that matches no hook specification (a misspelled hook)
    is a ``UsageError``.
    """
    manager = pluggy.PluginManager("tganbench")
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager=manager)

    for module_name in DEFAULT_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)

    for entry_point in _entry_points():
        if manager.has_plugin(entry_point.name):
            continue
        try:
            manager.register(entry_point.load(), name=entry_point.name)
        except Exception as error:
            registry.warnings.append(f"plugin '{entry_point.name}' failed to load: {type(error).__name__}: {error}")

    for spec in extra:
        try:
            manager.register(_import_plugin(spec), name=spec)
        except Exception as error:
            registry.warnings.append(f"plugin '{spec}' failed to load: {type(error).__name__}: {error}")

    try:
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        raise UsageError(f"plugin '{manager.get_name(error.plugin)}' is invalid: {error}") from None

    _collect(registry, "tganbench_register_strategies", "strategy", registry.strategies)
    _collect(registry, "tganbench_register_pairs", "pair", registry.pairs)
    _collect(registry, "tganbench_register_feature_extractors", "feature extractor", registry.extractors)
    _collect(registry, "tganbench_register_architectures", "architecture", registry.architectures)
    _collect(registry, "tganbench_register_metrics", "metric", registry.metrics)
    _collect(registry, "tganbench_register_augmentations", "augmentation", registry.augmentations)
    return registry
