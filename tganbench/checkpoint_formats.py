"""The built-in checkpoint formats: tganbench's own source files, and rosinality/stylegan2-pytorch checkpoints.

Registered like any third-party format (``tganbench_register_checkpoint_formats``);
a plugin adding another format can copy one of these classes. The field-by-field
description of both formats is in docs/checkpoints.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import torch

from tganbench import hookimpl
from tganbench.checkpoints import CheckpointFormat, StateDict, read_torch
from tganbench.fingerprints import state_fingerprint
from tganbench.models import ModelSpec
from tganbench.plan import ARCHITECTURE_SHORTHANDS
from tganbench.shipped_sources import prefixed_state
from tganbench.store import atomic_write

FORMAT = "tganbench-source"
VERSION = 1


class TganbenchFormat(CheckpointFormat):
    """tganbench's own source files, written by ``tganbench export-source``."""

    name = "tganbench"
    description = "tganbench's own source files, written by tganbench export-source"

    def recognises(self, path: Path) -> bool:
        contents = read_torch(path)
        return isinstance(contents, dict) and contents.get("format") == FORMAT

    def load(self, path: Path, model: ModelSpec) -> tuple[StateDict, StateDict, dict[str, Any]]:
        contents = read_torch(path)
        version = contents.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise ValueError(f"is version {version} of the format; this tganbench reads versions up to {VERSION}")
        missing = [key for key in ("model", "g", "d", "checksum") if key not in contents]
        if missing:
            raise ValueError(f"lacks the field '{missing[0]}' every tganbench source file has")
        g, d = contents["g"], contents["d"]
        if state_fingerprint(prefixed_state(g, d)) != contents["checksum"]:
            raise ValueError(f"does not match its recorded checksum {contents['checksum']}: the weights were "
                             "damaged or edited after export")
        difference = model_difference(contents["model"], model)
        if difference:
            raise ValueError(difference)
        return g, d, {"version": version, "model": contents["model"], "card": contents.get("card", {})}


def model_difference(recorded: dict[str, Any], model: ModelSpec) -> str:
    """The first way the model ``recorded`` in a file (``ModelSpec.describe()``) differs from the run's, or ``""``."""
    run = model.describe()
    architecture = run["architecture"]
    if recorded.get("architecture") != architecture:
        return f"made with architecture {recorded.get('architecture')}, the run uses {architecture} (--architecture)"
    if recorded.get("resolution") != run["resolution"]:
        return f"made at resolution {recorded.get('resolution')}, the run is at {run['resolution']} (--resolution)"
    if recorded.get("z_dim") != run["z_dim"]:
        return f"made with z_dim {recorded.get('z_dim')}, the run has {run['z_dim']} (--z-dim)"
    parameters = recorded.get("parameters") or {}
    for key, value in run["parameters"].items():
        if parameters.get(key) != value:
            flag = (f"--{key.replace('_', '-')}" if key in ARCHITECTURE_SHORTHANDS
                    else f"--architecture {architecture}[{key}=...]")
            made = f"{key}={parameters[key]}" if key in parameters else f"no parameter {key}"
            return f"made with {made}, the run has {key}={value} ({flag})"
    extra = [key for key in parameters if key not in run["parameters"]]
    if extra:
        return f"made with parameter {extra[0]}={parameters[extra[0]]}, which {architecture} does not have"
    return ""


def write_source_file(path: Path, model: ModelSpec, g: StateDict, d: StateDict, card: dict[str, Any]) -> str:
    """Write G's and D's weights as a tganbench source file at ``path`` (atomically); returns the checksum."""
    g = {key: tensor.detach().cpu() for key, tensor in g.items()}
    d = {key: tensor.detach().cpu() for key, tensor in d.items()}
    checksum = state_fingerprint(prefixed_state(g, d))
    contents = {"format": FORMAT, "version": VERSION, "model": model.describe(), "g": g, "d": d,
                "checksum": checksum, "card": card}
    atomic_write(path, lambda temporary: torch.save(contents, temporary))
    return checksum


class RosinalityFormat(CheckpointFormat):
    """Checkpoints in the layout of rosinality/stylegan2-pytorch: ``g_ema`` (else ``g``) and ``d`` state dicts.

    tganbench's ``stylegan2`` names its weights exactly as that project does,
    so the state dicts are handed on unchanged. Training checkpoints also hold
    ``g_optim``, ``d_optim`` and ``args`` (an ``argparse.Namespace``);
    converted ones ``latent_avg``. Those are not used, ``args`` aside: it is
    recorded in the manifest.
    """

    name = "rosinality"
    description = "rosinality/stylegan2-pytorch checkpoints: g_ema (or g) and d; stylegan2 only"

    def recognises(self, path: Path) -> bool:
        contents = read_torch(path)
        return (isinstance(contents, dict) and "format" not in contents
                and any(isinstance(contents.get(key), dict) for key in ("g_ema", "g", "d")))

    def load(self, path: Path, model: ModelSpec) -> tuple[StateDict, StateDict, dict[str, Any]]:
        contents = read_torch(path)
        generator = next((key for key in ("g_ema", "g") if isinstance(contents.get(key), dict)), None)
        if generator is None:
            raise ValueError("holds a discriminator ('d') but no generator ('g_ema' or 'g')")
        if not isinstance(contents.get("d"), dict):
            raise ValueError(f"holds a generator ('{generator}') but no discriminator ('d'); every transfer "
                             "strategy starts D from the source too, so the file needs both (the training "
                             "checkpoints rosinality/stylegan2-pytorch saves have them)")
        if model.architecture.name != "stylegan2":
            raise ValueError(f"a rosinality/stylegan2-pytorch checkpoint fits only --architecture stylegan2; the "
                             f"run's architecture is {model.architecture.label}")
        g, d = contents[generator], contents["d"]
        resolution = _generator_resolution(g)
        if resolution is not None and resolution != model.resolution:
            raise ValueError(f"made at resolution {resolution}, the run is at {model.resolution} (--resolution)")
        style = g.get("style.1.weight")  # the mapping network's first layer: (style dim, style dim)
        if isinstance(style, torch.Tensor) and style.dim() == 2 and style.shape[1] != model.z_dim:
            raise ValueError(f"made with style dimension {style.shape[1]}, the run's z_dim is {model.z_dim} "
                             "(--z-dim; stylegan2's style dimension is its z_dim)")
        args = contents.get("args")
        recorded = {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))} \
            if args is not None and hasattr(args, "__dict__") else {}
        return g, d, {"generator": generator, **({"args": recorded} if recorded else {})}


def _generator_resolution(g: StateDict) -> int | None:
    """The resolution of a rosinality generator: one ``to_rgbs`` layer per doubling from 8 px (``to_rgb1`` is 4 px)."""
    indices = [int(found.group(1)) for key in g if (found := re.match(r"to_rgbs\.(\d+)\.", key))]
    return 2 ** (max(indices) + 3) if indices else None


@hookimpl
def tganbench_register_checkpoint_formats(register: Callable[[CheckpointFormat], None]) -> None:
    """The built-in formats: tganbench's own files first, then rosinality/stylegan2-pytorch's."""
    register(TganbenchFormat())
    register(RosinalityFormat())
