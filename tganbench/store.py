"""The results folder: cells.csv, evals.csv, manifest.json and summary.md, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image
from torchvision.utils import make_grid

from tganbench.errors import UsageError

# Sample grids show this many images, 8 per row.
GRID_IMAGES = 64


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


class ResultsStore:
    """One run's results folder. Rows are rewritten after every cell, so a crash keeps finished cells."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise UsageError(f"cannot write to output folder {self.out_dir}: {error.strerror or error}") from None
        self.cells: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write ``manifest.json`` (config, versions, device, times)."""
        atomic_write_text(self.out_dir / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")

    def add_cell(self, cell: dict[str, Any], evals: list[dict[str, Any]]) -> None:
        """Record a finished cell and its evaluation rows, rewriting both CSV files."""
        self.cells.append(cell)
        self.evals.extend(evals)
        atomic_write_text(self.out_dir / "cells.csv", pd.DataFrame(self.cells).to_csv(index=False))
        atomic_write_text(self.out_dir / "evals.csv", pd.DataFrame(self.evals).to_csv(index=False))

    def write_text(self, name: str, text: str) -> None:
        """Write a text artefact (e.g. ``summary.md``) into the folder."""
        atomic_write_text(self.out_dir / name, text)

    def write_grid(self, name: str, images: torch.Tensor) -> str:
        """Save the first 64 of ``images`` (uint8, N x 3 x H x W) as one PNG grid at ``name``; returns ``name``."""
        grid = make_grid(images[:GRID_IMAGES].cpu(), nrow=8, padding=2, pad_value=255)
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(temporary, format="PNG")
        os.replace(temporary, path)
        return name
