"""A progress bar on stderr: redrawn in place on a terminal, a line every 10% otherwise.

Its rate counts from when the bytes start to flow: waiting for the other side to
join or to accept is not part of it."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1000
    return f"{count:.1f} GB"  # pragma: no cover


class ProgressBar:
    def __init__(self, label: str, total: int, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._started = 0.0
        self._start_bytes: int | None = None
        self._last_draw = 0.0
        self._last_tenth = -1

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self._start_bytes is None or done == self._start_bytes:
            # nothing has moved yet: the clock starts at the last update before it does
            self._start_bytes = done
            self._started = now
        fraction = done / self.total if self.total else 1.0
        if self.tty:
            if now - self._last_draw < 0.1 and done < self.total:
                return
            self._last_draw = now
            self.stream.write("\r" + self._line(done, fraction, now) + "\x1b[K")
        else:
            tenth = int(fraction * 10)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(self._line(done, fraction, now) + "\n")
        self.stream.flush()

    def _line(self, done: int, fraction: float, now: float) -> str:
        width = 24
        filled = int(fraction * width)
        bar = "#" * filled + "-" * (width - filled)
        elapsed = max(now - self._started, 1e-6)
        rate = (done - (self._start_bytes or 0)) / elapsed
        return (
            f"{self.label} [{bar}] {fraction * 100:5.1f}% "
            f"{human_bytes(done)} / {human_bytes(self.total)} {human_bytes(rate)}/s"
        )

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
