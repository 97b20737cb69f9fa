"""Progress of long phases (source pretraining, a cell's training, an evaluation).

On a terminal: a tqdm bar with rate and ETA. Without a terminal, or with
``--quiet``: a plain line on stderr at most every ``interval`` seconds, so CI
logs stay readable and a short phase prints nothing.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

PLAIN_INTERVAL_SECONDS = 30.0


class Progress:
    """Counts the units of one phase and shows them as a bar or as periodic plain lines."""

    def __init__(
        self,
        total: int,
        name: str,
        unit: str = "step",
        quiet: bool = False,
        interval: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.name, self.unit = total, name, unit
        self.interval = PLAIN_INTERVAL_SECONDS if interval is None else interval
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.started = self.last_line = time.perf_counter()
        terminal = getattr(self.stream, "isatty", lambda: False)()
        self.bar = None
        if terminal and not quiet:
            self.bar = tqdm(total=total, desc=name, unit=unit, leave=False, file=self.stream, dynamic_ncols=True)

    def update(self, count: int = 1) -> None:
        """Record ``count`` more units done."""
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        now = time.perf_counter()
        if now - self.last_line >= self.interval and self.done < self.total:
            rate = self.done / (now - self.started)
            remaining = (self.total - self.done) / rate if rate > 0 else float("nan")
            print(
                f"{self.name}: {self.done}/{self.total} {self.unit}s, {rate:.1f} {self.unit}s/s, "
                f"about {remaining:.0f} s left",
                file=self.stream,
                flush=True,
            )
            self.last_line = now

    def close(self) -> None:
        """End the phase (removes the bar on a terminal)."""
        if self.bar is not None:
            self.bar.close()
