"""Source checkpoints from files: the checkpoint-format plugin type, and loading a file for a run.

``--source-checkpoint PATH`` starts every transfer strategy from the weights in
a file instead of the shipped or pretrained source. A *format* (a plugin,
registered with ``tganbench_register_checkpoint_formats``) recognises its files
and reads G's and D's state dicts from them; the built-in ones are in
``checkpoint_formats.py``. Whatever the format, :func:`load_source_file` then
checks that the two state dicts fit the run's models exactly (every key, every
shape) and fingerprints them, so the protocol and the manifest name the weights
by content, not by the file's name.

Files are read with ``torch.load(weights_only=True)``: tensors and plain
containers only, never arbitrary pickled objects (a checkpoint from the
internet must not run code). The one class allowed beyond those is
``argparse.Namespace``, which rosinality/stylegan2-pytorch's training
checkpoints pickle as their ``args``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from tganbench.errors import UsageError
from tganbench.fingerprints import state_fingerprint
from tganbench.models import ModelSpec
from tganbench.shipped_sources import prefixed_state

StateDict = dict[str, torch.Tensor]

# The classes a checkpoint may hold beyond tensors and plain containers (see the module's docstring).
SAFE_CLASSES = (argparse.Namespace,)


class CheckpointFormat:
    """Base class of a checkpoint-format plugin: recognises files of one layout and reads G's and D's weights.

    Class attributes:
        name: unique among formats; recorded in the manifest.
        description: one line for ``tganbench list checkpoint-formats``.
    """

    name: str = ""
    description: str = ""

    def recognises(self, path: Path) -> bool:
        """Whether the file at ``path`` is in this format; False (never an exception) for any other file."""
        raise NotImplementedError

    def load(self, path: Path, model: ModelSpec) -> tuple[StateDict, StateDict, dict[str, Any]]:
        """G's and D's state dicts for the run's ``model``, and what the file says about itself.

        The state dicts must use the run's architecture's names (map them here
        if the file's differ); tganbench checks every key and shape afterwards.
        The third value holds plain values (str, numbers, lists, dicts) for the
        manifest. Raise ``ValueError`` naming the problem for a file that
        cannot serve the run (the message becomes the run's one error line).
        """
        raise NotImplementedError


def read_torch(path: Path) -> Any:
    """What ``torch.save`` wrote to ``path``, loaded with ``weights_only=True`` on the CPU.

    Large files are memory-mapped where the file allows it, so recognising a
    format costs little. Raises ``ValueError`` saying why a file cannot be read
    (not a torch file; a pickled object that ``weights_only`` refuses).
    """
    with _allowing_safe_classes():
        try:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
            return torch.load(path, map_location="cpu", weights_only=True)  # a file torch cannot map: read it whole
        except pickle.UnpicklingError as error:
            raise ValueError(_refusal(error)) from None
        except Exception as error:  # noqa: BLE001 - any unreadable file is one line
            detail = ": ".join(filter(None, (type(error).__name__, _first_line(error))))
            raise ValueError(f"torch.load cannot read it ({detail})") from None


def _allowing_safe_classes() -> contextlib.AbstractContextManager:
    """Let ``weights_only`` loading accept ``SAFE_CLASSES`` (within the block, where torch can scope it)."""
    scoped = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    if scoped is not None:
        return scoped(list(SAFE_CLASSES))
    add = getattr(torch.serialization, "add_safe_globals", None)  # torch 2.4: process-wide
    if add is not None:
        add(list(SAFE_CLASSES))
    return contextlib.nullcontext()


def _first_line(error: BaseException) -> str:
    return " ".join(str(error).strip().splitlines()[:1])[:200]


def _refusal(error: pickle.UnpicklingError) -> str:
    """Why ``weights_only`` loading refused a file, in one sentence."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    if found:
        return (f"it holds a pickled {found.group(1)}, which loading with weights_only=True refuses "
                "(tganbench reads tensors and plain values only, never objects that could run code)")
    return "torch.load cannot read it with weights_only=True (not a file torch.save wrote, or a damaged one)"


@dataclass(frozen=True)
class SourceFile:
    """A checkpoint file a run starts from: its weights, checked against the run's models, and their fingerprint."""

    path: Path
    format: str
    g: StateDict
    d: StateDict
    checksum: str  # state_fingerprint of the prefixed G and D weights, as for every source checkpoint
    info: dict[str, Any]  # what the format read about the file (a tganbench file's card, rosinality's args)

    def summary(self) -> dict[str, Any]:
        """What the manifest records about it."""
        return {"path": str(self.path), "format": self.format, "checksum": self.checksum, "info": self.info}


def shown(path: Path) -> str:
    """``path`` as a message shows it: relative to the working directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_source_file(path: Path, model: ModelSpec, formats: Sequence[CheckpointFormat]) -> SourceFile:
    """Read the checkpoint at ``path`` with the first of ``formats`` that recognises it, and check it fits ``model``.

    Every problem is a ``UsageError`` of one line naming the file: no format
    recognises it, the format refuses it, or a key or a shape of G's or D's
    state dict differs from the run's models (built with ``model`` and loaded
    with ``load_state_dict(strict=True)``).
    """
    name = shown(path)
    if not os.access(path, os.R_OK):
        raise UsageError(f"checkpoint {name} cannot be read (permission denied)")
    chosen = next((f for f in formats if _recognises(f, path)), None)
    if chosen is None:
        try:
            read_torch(path)
            why = ""
        except ValueError as error:
            why = f": {error}"
        names = ", ".join(f.name for f in formats) or "none"
        raise UsageError(f"checkpoint {name}: no checkpoint format recognises it (formats: {names}){why}")
    try:
        g, d, info = chosen.load(path, model)
    except UsageError:
        raise
    except ValueError as error:
        raise UsageError(f"checkpoint {name} ({chosen.name} format): {error}") from None
    except Exception as error:  # noqa: BLE001 - a bad file is one line, whatever the format's code raised
        raise UsageError(f"checkpoint {name} ({chosen.name} format) cannot be loaded: "
                         f"{type(error).__name__}: {_first_line(error)}") from None
    g_module, d_module = model.build(0, torch.device("cpu"))
    for network, state, module in (("generator", g, g_module), ("discriminator", d, d_module)):
        check_fit(name, network, state, module, model)
    info = json.loads(json.dumps(info if isinstance(info, dict) else {"info": info}, default=str))
    return SourceFile(Path(path), chosen.name, g, d, state_fingerprint(prefixed_state(g, d)), info)


def _recognises(checkpoint_format: CheckpointFormat, path: Path) -> bool:
    try:
        return bool(checkpoint_format.recognises(path))
    except Exception:  # noqa: BLE001 - a format that cannot tell is a format that does not recognise the file
        return False


def _shape(tensor: Any) -> str:
    shape = tuple(getattr(tensor, "shape", ()))
    return "(" + ", ".join(map(str, shape)) + ")"


def check_fit(name: str, network: str, state: Any, module: torch.nn.Module, model: ModelSpec) -> None:
    """Raise a ``UsageError`` naming the first key of ``state`` that does not fit ``module`` (G or D of ``model``).

    A key the module has and the file lacks, a key the file has and the module
    does not, or a shape that differs; then ``load_state_dict(strict=True)``
    must accept the dictionary.
    """
    where = f"{model.architecture.label} at {model.resolution} px"
    head = f"checkpoint {name} does not fit the run's {network}"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{head}: its weights are not a dictionary of tensors")
    expected = module.state_dict()
    problems = []
    for key, tensor in expected.items():
        if key not in state:
            problems.append(f"{key} {_shape(tensor)} of {where} is missing from the file")
        elif state[key].shape != tensor.shape:
            problems.append(f"{key} is {_shape(state[key])} in the file, {_shape(tensor)} in {where}")
    problems += [f"the file has {key} {_shape(state[key])}, which {where} does not"
                 for key in state if key not in expected]
    if problems:
        others = len(problems) - 1
        more = f" (and {others} more key{'s differ' if others > 1 else ' differs'})" if others else ""
        raise UsageError(f"{head}: {problems[0]}{more}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise UsageError(f"{head}: {' '.join(str(error).split())[:300]}") from None
