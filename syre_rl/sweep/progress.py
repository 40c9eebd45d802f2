"""What a sweep shows while it runs: one line per event, and on a terminal a live line of the counts."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Counts of runs by state, redrawn in place on a TTY; plain lines (counts in front) otherwise.

    :param total: runs in the sweep (finished ones included)
    :param stream: where to write (default stderr)
    """

    STATES = ("done", "running", "failed", "pending")

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.counts = dict.fromkeys(self.STATES, 0)
        self.started = time.monotonic()

    def _counts(self) -> str:
        minutes = (time.monotonic() - self.started) / 60
        parts = ", ".join(f"{self.counts[s]} {s}" for s in self.STATES if self.counts[s] or s == "done")
        return f"[{self.counts['done']}/{self.total} | {parts} | {minutes:.1f} min]"

    def update(self, **counts: int) -> None:
        """Set counts (``done=``, ``running=``, ``failed=``, ``pending=``) and redraw the live line."""
        self.counts.update(counts)
        if self.live:
            self.stream.write(f"\r\033[K{self._counts()}")
            self.stream.flush()

    def event(self, message: str) -> None:
        """A line that stays: a run started, finished, failed or is retried."""
        if self.live:
            self.stream.write(f"\r\033[K{message}\n{self._counts()}")
        else:
            self.stream.write(f"{self._counts()} {message}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
