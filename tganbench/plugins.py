"""The plugin manager: built-ins, entry-point plugins and ``--plugin`` modules, one registry."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType, ModuleType
from typing import Any, Callable, Iterator, Sequence

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
    "tganbench.strategies.ewc",
    "tganbench.strategies.adafm",
    "tganbench.strategies.cdc",
    "tganbench.strategies.dcl",
    "tganbench.strategies.minegan",
    "tganbench.augmentations.diffaugment",
    "tganbench.augmentations.ada",
    "tganbench.models.dcgan",
    "tganbench.models.stylegan2",
    "tganbench.metrics.standard",
    "tganbench.metrics.verdicts",
    "tganbench.data.embedded",
    "tganbench.data.torchvision_pairs",
    "tganbench.metrics.extractors",
    "tganbench.checkpoint_formats",
)


@dataclass
class Registered:
    """A registered object (strategy class, pair, extractor spec, architecture, metric, augmentation) and its plugin."""

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
    checkpoint_formats: dict[str, Registered] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _import_plugin(spec: str) -> ModuleType:
    """Import ``spec``, a dotted module path or the path of a ``.py`` file."""
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"plugin file {spec} does not exist")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[path.stem] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(path.stem, None)
            raise
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


def _implementers(caller: pluggy.HookCaller) -> dict[CodeType, str]:
    """The code object of each implementation of a hook, mapped to the name of the plugin it belongs to."""
    return {impl.function.__code__: impl.plugin_name for impl in caller.get_hookimpls()
            if hasattr(impl.function, "__code__")}


def _plugin_in(frames: Iterator[FrameType], implementers: dict[CodeType, str]) -> str | None:
    """The plugin of the first frame in ``frames`` that runs one of the hook's implementations."""
    return next((implementers[frame.f_code] for frame in frames if frame.f_code in implementers), None)


def _stack(frame: FrameType | None) -> Iterator[FrameType]:
    """``frame`` and its callers, innermost first."""
    while frame is not None:
        yield frame
        frame = frame.f_back


def _traceback_frames(error: BaseException) -> Iterator[FrameType]:
    """The frames an exception passed through, innermost (where it was raised) first."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return reversed(frames)


def _collect(registry: Registry, hook_name: str, kind: str, into: dict[str, Registered]) -> None:
    """Call one registration hook through pluggy and file what each plugin registers under its name.

    The hook is called through pluggy, once, so its order (load order, which
    ``tryfirst`` and ``trylast`` change) and its wrappers (``wrapper=True``,
    ``hookwrapper=True``) hold; the first registration of a name is kept.
    ``register`` learns which plugin calls it from the call stack: the nearest
    frame running one of the hook's implementations (so a plugin may register
    from a helper function it calls). A crash is blamed the same way, from the
    frames of its traceback. Because pluggy stops a hook call at the first
    exception, the hook is then called again without the plugin that raised,
    and what the failed call registered is discarded: one broken plugin costs
    the others nothing, and a registration hook should do nothing but register.
    """
    caller = getattr(registry.manager.hook, hook_name)
    implementers = _implementers(caller)
    broken: list[object] = []
    while True:
        found: dict[str, Registered] = {}
        clashes: list[str] = []

        def register(obj: Any) -> None:
            plugin = _plugin_in(_stack(sys._getframe(1)), implementers) or "unknown"
            name = obj.name
            if name in into or name in found:
                first = (into.get(name) or found[name]).plugin
                clashes.append(f"plugin '{plugin}' registers {kind} '{name}', already registered by '{first}'; "
                               "keeping the first")
            else:
                found[name] = Registered(obj, plugin)

        try:
            registry.manager.subset_hook_caller(hook_name, broken)(register=register)
        except Exception as error:  # a broken plugin must not take the others down
            plugin = _plugin_in(_traceback_frames(error), implementers)
            registry.warnings.append(
                f"plugin '{plugin or 'unknown'}' failed in {hook_name}: {type(error).__name__}: {error}"
            )
            if plugin is not None:
                broken.append(registry.manager.get_plugin(plugin))
                continue
            return  # not attributable to one implementation (a bug in a wrapper's plumbing): register nothing
        registry.warnings.extend(clashes)
        into.update(found)
        return


def notify(caller: pluggy.HookCaller, report: Callable[[str, str], None], **kwargs: Any) -> None:
    """Call an observer hook through pluggy; the one policy for observers that raise.

    Observers (``tganbench_evaluated``, ``tganbench_cell_finished``,
    ``tganbench_run_finished``) watch a run and never change it, so an observer
    that raises is reported and the run goes on: ``report(warning, details)``
    receives a one-line warning naming the plugin and the hook, and the
    traceback (for ``errors.log``). As with any pluggy hook, the exception ends
    that one call, so observers pluggy would have called after the raising one
    miss that one event; they hear of the next.
    """
    try:
        caller(**kwargs)
    except Exception as error:  # noqa: BLE001 - a broken logger plugin must not stop the benchmark
        plugin = _plugin_in(_traceback_frames(error), _implementers(caller))
        report(f"plugin '{plugin or 'unknown'}': {caller.name} hook raised {type(error).__name__}: {error}",
               traceback.format_exc())


def load_plugins(extra: Sequence[str] = ()) -> Registry:
    """Load built-ins, then ``tganbench`` entry points, then the ``extra`` modules or files, in that order.

    Hooks are called in that order too, unless an implementation says
    ``tryfirst`` or ``trylast``; where two plugins register one name, the first
    called keeps it.

    An installed entry-point plugin that fails to import is reported in
    ``Registry.warnings`` and skipped: the user did not name it, and the rest
    still runs. An ``extra`` plugin (``--plugin``, or ``plugin = [...]`` in a
    config file) is one the user asked for by name, so one that is missing or
    fails to import is a ``UsageError``, before anything runs. A hook
    implementation that matches no hook specification (a misspelled hook) is a
    ``UsageError`` too.
    """
    manager = pluggy.PluginManager("tganbench")
    manager.add_hookspecs(hookspecs)
    registry = Registry(manager=manager)

    loaded: dict[str, object] = {name: importlib.import_module(name) for name in DEFAULT_PLUGINS}
    for entry_point in _entry_points():
        if entry_point.name in loaded:
            continue
        try:
            loaded[entry_point.name] = entry_point.load()
        except Exception as error:
            registry.warnings.append(f"plugin '{entry_point.name}' failed to load: {type(error).__name__}: {error}")
    for spec in extra:
        if spec in loaded:
            continue
        try:
            module = _import_plugin(spec)
        except UsageError:
            raise
        except (Exception, SystemExit) as error:  # SystemExit: a plugin script that calls sys.exit on import
            raise UsageError(f"plugin '{spec}' cannot be loaded: {type(error).__name__}: {error}") from None
        if all(module is not other for other in loaded.values()):  # not already loaded as an entry point
            loaded[spec] = module

    # pluggy calls the last registered plugin first, so registering in reverse makes every hook run in
    # load order (built-ins, entry points, --plugin); tryfirst and trylast move an implementation from there.
    for name, plugin in reversed(loaded.items()):
        try:
            manager.register(plugin, name=name)
        except pluggy.PluginValidationError as error:
            if name in extra or name in DEFAULT_PLUGINS:
                raise UsageError(f"plugin '{name}' is invalid: {error}") from None
            registry.warnings.append(f"plugin '{name}' failed to load: {type(error).__name__}: {error}")

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
    _collect(registry, "tganbench_register_checkpoint_formats", "checkpoint format", registry.checkpoint_formats)
    return registry
