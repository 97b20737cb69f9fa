"""The results folder: cells.csv, evals.csv, manifest.json, grids and logs, written atomically, one run at a time.

:func:`read_results` is the one reader of a results folder (reports, figures,
``compare`` and resume all use it), :func:`cell_key` the one key of a cell
within a folder, and :func:`recorded_metrics` the metrics a folder holds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
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
# The files that hold a run's results: what makes a folder a results folder.
RESULT_FILES = ("cells.csv", "evals.csv", "manifest.json")
# The reference rows (copy-shots, real, source) of each (shots, seed): beside the cells, never among them.
REFERENCES_FILE = "references.csv"
# The kinds of reference rows, in display order (``tganbench.references`` computes them).
REFERENCE_KINDS = ("copy-shots", "real", "source")
# Everything a run writes into its folder (what a fresh run over an old folder removes).
WRITTEN_FILES = (*RESULT_FILES, REFERENCES_FILE, "summary.md", "report.html", ERRORS_LOG)
# One JSON file per finished cell, written by whoever executed it (the driver folds them into the CSV files).
CELL_RESULTS = "cells"
WRITTEN_FOLDERS = ("plots", "samples", CELL_RESULTS, "submitit")
# The columns of cell_key: a cell within one results folder (one pair per folder).
CELL_KEY = ("shots", "strategy", "seed", "source_seed")
# ``source_seed`` of a cell that starts from random weights (scratch), or of a row written before it was recorded.
NO_SOURCE = -1
# What cells.csv must hold to be reported at all.
CELL_COLUMNS = ("pair", "shots", "strategy", "seed", "status", "metric", "extractor", "n_generated")


def cell_key(row: dict[str, Any]) -> tuple[int, str, int, int]:
    """What identifies a cell within one results folder: (shots, strategy label, seed, source seed)."""
    return int(row["shots"]), str(row["strategy"]), int(row["seed"]), source_seed_of(row)


def source_seed_of(row: dict[str, Any]) -> int:
    """The seed of the source checkpoint a row's cell started from; ``NO_SOURCE`` when none (or not recorded)."""
    value = row.get("source_seed")
    try:
        return NO_SOURCE if value is None or value != value else int(value)
    except (TypeError, ValueError):
        return NO_SOURCE


def with_source_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with an integer ``source_seed`` column (``NO_SOURCE`` where absent), so grouping never drops rows."""
    if frame.empty and "source_seed" not in frame:
        return frame
    values = frame["source_seed"] if "source_seed" in frame else pd.Series(NO_SOURCE, index=frame.index)
    return frame.assign(source_seed=values.fillna(NO_SOURCE).astype(int))


@dataclass(frozen=True)
class RecordedMetric:
    """One entry of ``manifest["metrics"]``: how a metric's columns are named and read.

    ``columns`` maps each evals.csv column to the cells.csv column that holds
    its value at the final evaluation; the first entry is the headline (shown
    in the summary, gated by ``compare``, plotted). With ``best``, cells.csv also
    holds ``<name>_best`` and ``<name>_best_step``: with ``select_by`` (an
    evals.csv column scored on the validation images) the test value at the
    step where ``select_by`` was best, and ``<name>_oracle_best``, the best test
    value over the evaluations (oracle early stopping, named as such). ``threshold`` is compare's
    default limit for the headline ("10%", "0.1" or None); ``unit`` is
    "number" or "share" (a value in [0, 1], shown as a percentage).
    """

    name: str
    title: str
    direction: str = "lower"
    every_evaluation: bool = True
    columns: dict[str, str] = field(default_factory=dict)
    best: bool = False
    threshold: str | None = None
    unit: str = "number"
    description: str = ""
    select_by: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RecordedMetric:
        """Read one manifest entry; keys this version does not know are ignored."""
        known = {key: record[key] for key in cls.__dataclass_fields__ if key in record}
        return cls(**{**known, "columns": dict(record.get("columns") or {})})

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def headline(self) -> str:
        """The evals.csv column of the headline value (``fd``)."""
        return next(iter(self.columns))

    @property
    def final(self) -> str:
        """The cells.csv column of the headline at the final evaluation (``fd_final``)."""
        return self.columns[self.headline]

    @property
    def best_column(self) -> str:
        """``<name>_best``: the best headline value over the evaluations (only with ``best``)."""
        return f"{self.name}_best"

    @property
    def best_step_column(self) -> str:
        return f"{self.name}_best_step"

    @property
    def oracle_column(self) -> str:
        """``<name>_oracle_best``: the best test value over the evaluations (only with ``select_by``)."""
        return f"{self.name}_oracle_best"


# What a results folder written before metrics were recorded holds: exactly these columns.
LEGACY_METRICS = (
    RecordedMetric("fd", "FD", "lower", True, {"fd": "fd_final"}, best=True, threshold="10%",
                   description="Fréchet distance between generated and held-out images in the extractor's features"),
    RecordedMetric("kid", "KID", "lower", False, {"kid_mean": "kid_mean", "kid_std": "kid_std"},
                   description="kernel inception distance (mean and std over subsets), final evaluation only"),
    RecordedMetric("recognised", "recognised", "higher", True,
                   {"recognised": "recognised", "recognised_source": "recognised_source"}, threshold="0.1",
                   unit="share", description="% of the final samples the recognition network names as the target shape"),
)


def recorded_metrics(manifest: dict[str, Any], cells: pd.DataFrame) -> list[RecordedMetric]:
    """The metrics of a results folder, in display order: ``manifest["metrics"]``, else the legacy list.

    A folder written before the manifest recorded its metrics holds FD and KID,
    and ``recognised`` when cells.csv has that column.
    """
    if manifest.get("metrics") is not None:
        return [RecordedMetric.from_record(record) for record in manifest["metrics"]]
    return [metric for metric in LEGACY_METRICS if metric.name != "recognised" or metric.final in cells.columns]


@dataclass
class Results:
    """The contents of one results folder, as read by :func:`read_results`."""

    folder: Path
    cells: pd.DataFrame
    evals: pd.DataFrame
    manifest: dict[str, Any]
    references: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def metrics(self) -> list[RecordedMetric]:
        """The metrics this folder holds, in display order (see :func:`recorded_metrics`)."""
        return recorded_metrics(self.manifest, self.cells)


def read_results(folder: Path, partial: bool = False) -> Results:
    """Read cells.csv, evals.csv, references.csv and manifest.json of a results folder.

    The tables are as written, except that every one has an integer
    ``source_seed`` column (``NO_SOURCE`` in folders written before it existed).
    references.csv is optional (empty when absent).

    By default the folder must be a complete results folder (reports and
    ``compare``): anything else is a one-line UsageError. With ``partial`` (a run
    resuming in its own folder) missing files read as empty, and nothing is checked.
    """
    folder = Path(folder)
    if not partial:
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder")
        missing = [name for name in RESULT_FILES if not (folder / name).is_file()]
        if missing:
            raise UsageError(f"{folder} is not a tganbench results folder (no {', '.join(missing)})")
    try:
        cells, evals = _read_csv(folder / "cells.csv"), _read_csv(folder / "evals.csv")
        references = _read_csv(folder / REFERENCES_FILE)
        manifest_path = folder / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise UsageError(f"cannot read the results in {folder}: {' '.join(str(error).split())}") from None
    if not partial:
        absent = [column for column in CELL_COLUMNS if column not in cells.columns]
        if absent or cells.empty:
            problem = f"cells.csv lacks {', '.join(absent)}" if absent else "cells.csv has no cells"
            raise UsageError(f"{folder} is not a complete tganbench results folder ({problem})")
    return Results(folder, with_source_seed(cells), with_source_seed(evals), manifest, with_source_seed(references))


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV file as a table; a missing or empty file is an empty table."""
    try:
        return pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return pd.DataFrame()


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


def reference_grid(kind: str, shots: int, seed: int, source_seed: int) -> str:
    """Where the images of a reference row (``real``, ``source``) of (shots, seed) go."""
    source = f"{source_seed}" if source_seed != NO_SOURCE else ""
    return f"samples/reference-{kind}{source}-{shots}shots-seed{seed}.png"


def samples_grid(shots: int, seed: int, label: str, source_seed: int | None = None) -> str:
    """Where a cell's final samples go: one file per (shots, seed, strategy label[, source seed])."""
    source = "" if source_seed is None else f"-source{source_seed}"
    return f"samples/{shots}shots-seed{seed}{source}-{re.sub(r'[^A-Za-z0-9.=_-]+', '_', label).strip('_')}.png"


def cell_result_file(shots: int, seed: int, label: str, source_seed: int | None = None) -> str:
    """Where the result file of one cell goes: named like its grid, in ``cells/``."""
    return f"{CELL_RESULTS}/{Path(samples_grid(shots, seed, label, source_seed)).stem}.json"


def result_file_of(spec: Any) -> str:
    """The result file of a ``CellSpec`` (its source seed is in the name only when the run has several)."""
    source_seed = spec.source_seed if spec.config.source_seeds > 1 else None
    return cell_result_file(spec.shots, spec.seed, spec.label, source_seed)


def save_cell_result(out_dir: Path, name: str, row: dict[str, Any], evals: list[dict[str, Any]],
                     traceback_text: str | None = None) -> None:
    """Write one finished cell's row, evaluation rows and (failed cells) traceback to ``out_dir/name``, atomically.

    Workers call this without the folder's lock: each cell has its own file, and
    only the driver writes the shared files.
    """
    record = {"row": row, "evals": evals, "traceback": traceback_text}
    atomic_write_text(Path(out_dir) / name, json.dumps(record, default=str) + "\n")


def load_cell_results(out_dir: Path) -> list[dict[str, Any]]:
    """The cell result files in ``out_dir/cells`` (``row``, ``evals``, ``traceback``), in name order.

    A file that cannot be read (a worker killed while writing leaves only a
    temporary file, never a part) is skipped.
    """
    records = []
    for path in sorted((Path(out_dir) / CELL_RESULTS).glob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return records


def save_grid(path: Path, images: torch.Tensor) -> None:
    """Save 64 of ``images`` (uint8, N x 3 x H x W) as one PNG grid at ``path``, atomically.

    With more than 64 images they are taken evenly spaced through the set, so a
    set stored in folder order (one photo after another) is shown whole.
    """
    if len(images) > GRID_IMAGES:
        images = images[torch.linspace(0, len(images) - 1, GRID_IMAGES).round().long()]
    grid = Image.fromarray(make_grid(images.cpu(), nrow=8, padding=2, pad_value=255).permute(1, 2, 0).numpy())
    atomic_write(path, lambda temporary: grid.save(temporary, format="PNG"))


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
        self.references: list[dict[str, Any]] = []
        self._rank: dict[tuple[int, str, int, int], int] = {}

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
        results = read_results(self.out_dir, partial=True)
        cells, evals = results.cells.to_dict("records"), results.evals.to_dict("records")
        kept = [row for row in cells if keep(row)]
        keys = {cell_key(row) for row in kept}
        self.cells = kept
        self.evals = [row for row in evals if cell_key(row) in keys]
        self.references = results.references.to_dict("records")
        return len(kept)

    def clear(self) -> None:
        """Remove the results a previous run left in the folder (only the files and folders tganbench writes)."""
        for name in WRITTEN_FILES:
            (self.out_dir / name).unlink(missing_ok=True)
        for name in WRITTEN_FOLDERS:
            shutil.rmtree(self.out_dir / name, ignore_errors=True)

    def log_error(self, text: str) -> None:
        """Append ``text`` to ``errors.log`` in the folder (failed cells, failing plugin hooks)."""
        with open(self.out_dir / ERRORS_LOG, "a") as log:
            log.write(text.rstrip("\n") + "\n\n")

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write ``manifest.json`` (config, versions, device, times)."""
        atomic_write_text(self.out_dir / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")

    def set_order(self, keys: list[tuple[int, str, int, int]]) -> None:
        """Keep the rows of cells.csv and evals.csv in this order of cell keys (the plan's), rewriting both.

        Cells finish in another order when a run resumes; tables and figures list
        rows as the files hold them, so the files follow the plan. Rows whose key
        is not in ``keys`` go last, in the order they came.
        """
        self._rank = {key: index for index, key in enumerate(keys)}
        self._write_rows()

    def add_cell(self, cell: dict[str, Any], evals: list[dict[str, Any]]) -> None:
        """Record a finished cell and its evaluation rows, rewriting both CSV files."""
        self.cells.append(cell)
        self.evals.extend(evals)
        self._write_rows()

    def _write_rows(self) -> None:
        """Rewrite cells.csv and evals.csv with their rows in the plan's order (nothing to write before a cell)."""
        if not self.cells:
            return
        last = len(self._rank)
        self.cells.sort(key=lambda row: self._rank.get(cell_key(row), last))
        self.evals.sort(key=lambda row: self._rank.get(cell_key(row), last))  # stable: steps keep their order
        # evals.csv first: a cell is finished once its cells.csv row is written, and a kill between the two
        # writes must not leave a finished cell without its curve (resume drops evaluations without a cell).
        atomic_write_text(self.out_dir / "evals.csv", pd.DataFrame(self.evals).to_csv(index=False))
        atomic_write_text(self.out_dir / "cells.csv", pd.DataFrame(self.cells).to_csv(index=False))

    def add_references(self, rows: list[dict[str, Any]]) -> None:
        """Record reference rows (``tganbench.references``), rewriting references.csv."""
        self.references.extend(rows)
        atomic_write_text(self.out_dir / REFERENCES_FILE, pd.DataFrame(self.references).to_csv(index=False))

    def write_text(self, name: str, text: str) -> None:
        """Write a text artefact (e.g. ``summary.md``) into the folder."""
        atomic_write_text(self.out_dir / name, text)

    def write_grid(self, name: str, images: torch.Tensor) -> str:
        """Save 64 of ``images`` as one PNG grid at ``name`` in the folder (:func:`save_grid`); returns ``name``."""
        save_grid(self.out_dir / name, images)
        return name
