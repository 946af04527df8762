"""A one-line progress bar on stderr for long runs: no dependency for a line of text.

It draws only on a terminal (or when forced), at most a few times a second, and clears its line
when done, so piped and --json output never contain it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 24
_REDRAW_SECONDS = 0.2


class Progress:
    def __init__(self, total: int, *, label: str, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.label = total, label
        self.done = 0
        self.note = ""
        self._started = time.monotonic()
        self._drawn_at = 0.0

    def advance(self, count: int = 1, *, note: str | None = None) -> None:
        self.done += count
        if note is not None:
            self.note = note
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at >= _REDRAW_SECONDS or self.done >= self.total):
            self._drawn_at = now
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self._started, 1e-9)
        share = self.done / self.total if self.total else 1.0
        filled = min(_WIDTH, int(share * _WIDTH))
        rate = self.done / elapsed
        eta = f" ETA {_duration((self.total - self.done) / rate)}" if rate > 0 and self.done < self.total else ""
        note = f" {self.note}" if self.note else ""
        return (f"{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] {self.done}/{self.total} "
                f"{share:4.0%} {rate:.1f}/s{eta}{note}")

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
