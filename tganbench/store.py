"""The results folder: cells.csv, evals.csv, manifest.json, grids and logs, written atomically, one run at a time."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, TextIO

import pandas as pd
import torch
from PIL import Image
from torchvision.utils import make_grid

from tganbench.errors import UsageError

try:
    import fcntl  # Unix only
except ImportError:  # pragma: no cover
    fcntl = None

# Sample grids show this many images, 8 per row.
GRID_IMAGES = 64
LOCK_FILE = ".lock"
ERRORS_LOG = "errors.log"
RESULT_FILES = ("cells.csv", "evals.csv", "manifest.json", "summary.md", "report.html", ERRORS_LOG)
RESULT_FOLDERS = ("plots", "samples")


def cell_key(row: dict[str, Any]) -> tuple[int, str, int]:
    """What identifies a cell within one results folder: (shots, strategy label, seed)."""
    return int(row["shots"]), str(row["strategy"]), int(row["seed"])


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary)`` for a file beside ``path``, then rename it over ``path``.

    A reader (or a run killed half-way) sees the old file or the new one, never a part.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(temporary)
    os.replace(temporary, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write(path, lambda temporary: temporary.write_text(text))


REFERENCE_GRID = "samples/reference.png"


def shots_grid(shots: int, seed: int) -> str:
    """Where the grid of the real training shots of (shots, seed) goes in a results folder."""
    return f"samples/shots-{shots}-seed{seed}.png"


def samples_grid(shots: int, seed: int, label: str) -> str:
    """Where a cell's final samples go: one file per (shots, seed, strategy label)."""
    return f"samples/{shots}shots-seed{seed}-{re.sub(r'[^A-Za-z0-9.=_-]+', '_', label).strip('_')}.png"


class ResultsStore:
    """One run's results folder, held by one process at a time.

    Rows are rewritten (atomically) after every cell, so a crash or a kill keeps
    every finished cell. The folder is locked with ``flock`` on ``.lock`` for as
    long as the store is open; the operating system drops the lock when the
    process dies, so a killed run never blocks the next one. Call ``close()``.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise UsageError(f"cannot write to output folder {self.out_dir}: {error.strerror or error}") from None
        self._lock = self._acquire_lock()
        self.cells: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []

    def _acquire_lock(self) -> TextIO | None:
        path = self.out_dir / LOCK_FILE
        handle = open(path, "a+")  # noqa: SIM115 - held open until close()
        if fcntl is None:  # pragma: no cover - no flock on this platform: no locking
            return handle
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise UsageError(
                f"results folder {self.out_dir} is in use by another tganbench run (process {owner}); "
                "wait for it to finish or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return handle

    def close(self) -> None:
        """Release the folder's lock (and remove the lock file)."""
        if self._lock is not None:
            (self.out_dir / LOCK_FILE).unlink(missing_ok=True)
            self._lock.close()
            self._lock = None

    def load_finished(self, keep: Callable[[dict[str, Any]], bool]) -> int:
        """Load the cells (and their evaluations) already in the folder for which ``keep(row)`` is true.

        Returns how many were kept. Rows not kept (failed cells, say) are dropped
        from both files when the next cell is written.
        """
        cells_path, evals_path = self.out_dir / "cells.csv", self.out_dir / "evals.csv"
        if not cells_path.is_file():
            return 0
        cells = pd.read_csv(cells_path).to_dict("records")
        evals = pd.read_csv(evals_path).to_dict("records") if evals_path.is_file() else []
        kept = [row for row in cells if keep(row)]
        keys = {cell_key(row) for row in kept}
        self.cells = kept
        self.evals = [row for row in evals if cell_key(row) in keys]
        return len(kept)

    def clear(self) -> None:
        """Remove the results a previous run left in the folder (only the files and folders tganbench writes)."""
        for name in RESULT_FILES:
            (self.out_dir / name).unlink(missing_ok=True)
        for name in RESULT_FOLDERS:
            shutil.rmtree(self.out_dir / name, ignore_errors=True)

    def log_error(self, text: str) -> None:
        """Append ``text`` to ``errors.log`` in the folder (failed cells, failing plugin hooks)."""
        with open(self.out_dir / ERRORS_LOG, "a") as log:
            log.write(text.rstrip("\n") + "\n\n")

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
        """Save 64 of ``images`` (uint8, N x 3 x H x W) as one PNG grid at ``name``; returns ``name``.

        With more than 64 images they are taken evenly spaced through the set, so a
        set stored in folder order (one photo after another) is shown whole.
        """
        if len(images) > GRID_IMAGES:
            images = images[torch.linspace(0, len(images) - 1, GRID_IMAGES).round().long()]
        grid = Image.fromarray(make_grid(images.cpu(), nrow=8, padding=2, pad_value=255).permute(1, 2, 0).numpy())
        atomic_write(self.out_dir / name, lambda temporary: grid.save(temporary, format="PNG"))
        return name
