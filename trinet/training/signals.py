"""Finish the current training step before stopping on Ctrl+C or SIGTERM."""

from __future__ import annotations

import logging
import signal
from typing import Any, Sequence

log = logging.getLogger(__name__)


class Uninterrupt:
    """Context manager that turns the first SIGINT/SIGTERM into a flag.

    The loop checks `interrupted` after each step, saves and leaves. The first signal restores the
    previous handlers, so a second one acts as usual (Ctrl+C raises KeyboardInterrupt, SIGTERM
    terminates).
    """

    def __init__(self, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)):
        self.signals = tuple(signals)
        self.interrupted = False
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        self.release()
        self.interrupted = True
        self.received = signum
        log.warning("Received %s: finishing the current step, then saving and stopping "
                    "(send it again to stop at once).", signal.Signals(signum).name)

    def release(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __enter__(self) -> "Uninterrupt":
        for signum in self.signals:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        self.release()
