"""Cells per minute of one grid run serially and with local worker processes, side by side, on this machine.

    python benchmarks/executor_throughput.py                       # serial vs local:2, one thread per cell
    python benchmarks/executor_throughput.py --executors serial,local:2,local:4 --threads-per-cell 1

Each executor runs the same grid (quick profile, shortened to --steps target
steps, evaluated every steps/2) into its own results folder, in a fresh
``tganbench run`` process whose torch thread count gives every cell
``--threads-per-cell`` threads (serial: that many; local:N: N times that
many, divided among the workers). The figure is cells per minute of the
whole command's wall time (start-up and reference rows included, about the
same for each), and the script checks that every executor gave the serial
run's values.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

# Columns that may differ between two executions of one cell.
TIMING = ["train_seconds", "eval_seconds", "steps_per_second", "peak_memory_mb", "samples"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executors", default="serial,local:2", help="comma-separated --executor values")
    parser.add_argument("--strategies", default="finetune,freeze-d")
    parser.add_argument("--seeds", default="3")
    parser.add_argument("--steps", type=int, default=200, help="target steps per cell")
    parser.add_argument("--threads-per-cell", type=int, default=1)
    args = parser.parse_args()

    rows, reference = [], None
    with tempfile.TemporaryDirectory() as folder:
        for executor in args.executors.split(","):
            workers = int(executor.split(":")[1]) if executor.startswith("local:") else 1
            out = Path(folder) / executor.replace(":", "-")
            command = [sys.executable, "-m", "tganbench.cli", "run", "--strategies", args.strategies,
                       "--seeds", args.seeds, "--target-steps", str(args.steps), "--eval-every", str(args.steps // 2),
                       "--executor", executor, "--out", str(out), "--quiet"]
            env = {**os.environ, "OMP_NUM_THREADS": str(workers * args.threads_per_cell)}
            started = time.perf_counter()
            subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - started
            cells = pd.read_csv(out / "cells.csv")
            values = cells.drop(columns=[c for c in TIMING if c in cells.columns])
            same = "reference" if reference is None else str(values.equals(reference))
            reference = values if reference is None else reference
            rows.append({"executor": executor, "cells": len(cells), "wall s": round(wall, 1),
                         "cells/min": round(len(cells) / wall * 60, 2),
                         "train s per cell": round(cells["train_seconds"].mean(), 1),
                         "same values as serial": same})
    print(pd.DataFrame(rows).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
