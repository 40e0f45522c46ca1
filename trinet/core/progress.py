"""A small progress display for long loops: count, rate, ETA; quiet on request."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_seconds(seconds: float) -> str:
    """`3725.2` -> `'1:02:05'`."""
    seconds = int(max(0, round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"


class Progress:
    """Prints `desc: done/total (pct) rate unit/s ETA m:ss` to `stream`.

    On a terminal the line is redrawn in place (at most every `interval` seconds); elsewhere (logs,
    CI) a new line is printed every `interval` seconds, so the output stays short.
    """

    def __init__(self, total: int, desc: str, unit: str = "it", *, quiet: bool = False,
                 stream: TextIO | None = None, interval: float | None = None):
        self.total, self.desc, self.unit, self.quiet = total, desc, unit, quiet
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if interval is not None else (0.25 if self.tty else 10.0)
        self.done = 0
        self.start = time.perf_counter()
        self._last = float("-inf")

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {self.done}/{self.total}"
        if self.total:
            text += f" ({self.done / self.total:.0%})"
        text += f" {rate:.1f} {self.unit}/s"
        if self.done < self.total and rate > 0:
            text += f" ETA {format_seconds((self.total - self.done) / rate)}"
        elif self.done >= self.total:
            text += f" in {format_seconds(elapsed)}"
        return text

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.quiet and self.done < self.total and now - self._last >= self.interval:
            self._last = now
            self._emit(final=False)

    def _emit(self, final: bool) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if not self.quiet:
            self._emit(final=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        elif self.tty and not self.quiet:
            self.stream.write("\n")
