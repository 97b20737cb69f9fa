"""Source checkpoints shipped inside the package for the embedded pairs, trained once and checked on load.

Pretraining a source that has really learnt its domain takes longer than a
whole quick run, so the embedded pairs start from a checkpoint made once by
``python -m tganbench.train_shipped_source`` and committed with its card
(``shipped/index.json``): which source images and architecture it fits, how
it was trained, how long that took and what its samples show. A run uses it
when the pair's source images and the run's architecture match the card
exactly; anything else (``--source-steps N``, another width, image folders,
torchvision pairs) pretrains in the run as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tganbench.fingerprints import state_fingerprint
from tganbench.models import ModelSpec

SHIPPED_DIR = Path(__file__).with_name("shipped")
INDEX = SHIPPED_DIR / "index.json"


@dataclass(frozen=True)
class ShippedSource:
    """The card of one shipped checkpoint.

    ``source_fingerprint`` is ``tensor_fingerprint`` of the source images it was
    trained on, ``model`` the architecture (its name, absent for ``dcgan``, its parameters,
    ``resolution`` and ``z_dim``),
    ``checksum`` the ``state_fingerprint`` of its weights, and ``card`` how it
    was made and measured (steps, settings, seconds, machine, FD, recognition).
    """

    file: str
    source_fingerprint: str
    model: dict[str, Any]
    checksum: str
    card: dict[str, Any]

    @property
    def path(self) -> Path:
        """Where the weights are."""
        return SHIPPED_DIR / self.file

    def summary(self) -> dict[str, Any]:
        """What the manifest records about it."""
        return {"file": self.file, "checksum": self.checksum, **self.card}


def shipped_sources(index: Path = INDEX) -> list[ShippedSource]:
    """Every shipped checkpoint's card, in index order (none when there is no index)."""
    if not index.is_file():
        return []
    return [ShippedSource(**entry) for entry in json.loads(index.read_text())]


def find_shipped(source_fingerprint: str, model: ModelSpec, index: Path = INDEX) -> ShippedSource | None:
    """The shipped checkpoint trained on exactly these source images with exactly this architecture, if any.

    A card's ``model`` holds the architecture's parameters, ``resolution`` and
    ``z_dim``, and ``architecture`` (``dcgan`` when absent).
    """
    wanted = {"architecture": model.architecture.name, **model.architecture.params,
              "resolution": model.resolution, "z_dim": model.z_dim}
    for entry in shipped_sources(index):
        if entry.source_fingerprint == source_fingerprint and {"architecture": "dcgan", **entry.model} == wanted:
            return entry
    return None


def prefixed_state(g: dict[str, torch.Tensor], d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """G's and D's weights as one named set (``g.…`` then ``d.…``): what a checksum covers."""
    return {**{f"g.{k}": v for k, v in g.items()}, **{f"d.{k}": v for k, v in d.items()}}


def load_shipped(entry: ShippedSource) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """G's and D's state dicts of ``entry``, loaded with ``weights_only`` and checked against its checksum.

    Raises ``ValueError`` when the file does not match its card (a damaged install).
    """
    saved = torch.load(entry.path, map_location="cpu", weights_only=True)
    if state_fingerprint(prefixed_state(saved["g"], saved["d"])) != entry.checksum:
        raise ValueError(f"shipped source checkpoint {entry.path} does not match its checksum {entry.checksum}; "
                         "reinstall tganbench")
    return saved["g"], saved["d"]
